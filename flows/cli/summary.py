"""The run summaries the commands print: a line per stage, then what it dropped and what it changed apart."""

from __future__ import annotations

from collections.abc import Iterable

from schemas import StageReport


def stage_lines(stages: Iterable[StageReport]) -> list[str]:
    """A line of counts per stage, then its drops by reason and its changes (counters of what it did to the
    records it kept, such as redactions or cache use), each on a line of its own when there are any."""
    lines = []
    for s in stages:
        lines.append(f"  {s.stage:<15} in {s.inputs:>7}  kept {s.kept:>7}  dropped {s.dropped:>6}")
        for label, counts in (("dropped", s.dropped_by_reason), ("changed", s.changed)):
            if counts:
                lines.append(f"      {label}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return lines
