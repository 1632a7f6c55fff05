"""How the benches time chatsift against a peer: the contenders in turn, round after round, medians.

Alternating keeps a noisy shared machine's slow spells from landing on one contender only; the
median of each keeps one outlier round from deciding the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def seconds(run: Callable[[], object]) -> float:
    """The wall seconds `run()` takes."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def alternating_medians(runs: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each of `runs` once per round, in the mapping's order, for `repeats` rounds; the median of
    the seconds each returned (its own measure: `seconds(...)`, or a figure such as a flow's
    wall time from its report)."""
    measured: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            measured[name].append(run())
    return {name: statistics.median(values) for name, values in measured.items()}
