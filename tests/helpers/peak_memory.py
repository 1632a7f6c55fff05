"""Peak memory of one piece of work, measured in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any, NamedTuple

from tests.conftest import REPO_ROOT

# The snippet's `setup` runs first; the peak is then reset (writing 5 to clear_refs resets VmHWM,
# Linux 4.0+) so that only `work` counts. VmHWM, not ru_maxrss: Linux carries a forking parent's
# peak across exec into ru_maxrss.
_HARNESS = """
import json, re
from pathlib import Path

def _vmhwm_mib():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) // 1024

{setup}
Path("/proc/self/clear_refs").write_text("5")
_before = _vmhwm_mib()
result = None
{work}
print(json.dumps({{"peak_mib": _vmhwm_mib(), "growth_mib": _vmhwm_mib() - _before, "result": result}}))
"""


class PeakMemory(NamedTuple):
    peak_mib: int  # the process's peak RSS while `work` ran
    growth_mib: int  # how far that peak rose above the RSS `setup` left
    result: Any  # what `work` set `result` to


def peak_memory(setup: str, work: str) -> PeakMemory:
    """Run `setup` then `work` (Python source) in a fresh interpreter at the repo root and measure `work`."""
    code = _HARNESS.format(setup=textwrap.dedent(setup), work=textwrap.dedent(work))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return PeakMemory(**json.loads(done.stdout.strip().splitlines()[-1]))
