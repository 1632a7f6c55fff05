"""How long `chatsift runs show` takes on a run of the real sample, and how big its page is.

    .venv/bin/python -m bench.runs_show              # curate the 3,003 real conversations, then time the page

The run is `chatsift curate` with the defaults (the page itself off: [run] explore_page = false) on the real
ShareGPT sample in ../shared, in a temporary folder; then curation.runs.explore.write_explore is timed, medians
of --repeats. The last line is for the README.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path

from bench.timing import alternating_medians, seconds

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args(argv)
    from curation.runs.explore import run_config, write_explore
    from flows.cli import main as chatsift
    from flows.resources import explore_tools

    folder = Path(tempfile.mkdtemp(prefix="bench-runs-show-"))
    try:
        dump = folder / "sample.json"
        with gzip.open(args.shared / SAMPLE, "rt", encoding="utf-8") as f:
            dump.write_text(json.dumps(json.load(f)), encoding="utf-8")
        config = folder / "config.json"
        config.write_text(json.dumps({"run": {"explore_page": False}}))
        argv = ["curate", str(dump), "--out", str(folder / "runs"), "--run-id", "r", "--config", str(config)]
        if chatsift([*argv, "--progress", "off"]) != 0:
            raise SystemExit("the curate run failed")
        run = folder / "runs" / "r"
        tools = explore_tools(run_config(run))
        page = lambda: seconds(lambda: write_explore(run, tools=tools))  # noqa: E731
        medians = alternating_medians({"runs show": page}, args.repeats)
        size = (run / "explore.html").stat().st_size
        report = json.loads((run / "report.json").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"bench.runs_show: the real sample's run ({report['records_read']} read, {report['kept']} kept, "
        f"{report['dropped']} dropped): explore.html {size / 1024:.0f} KiB in {medians['runs show']:.2f} s "
        f"(median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
