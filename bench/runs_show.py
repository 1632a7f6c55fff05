"""How long `chatsift runs show` takes on a run of the real sample, and how big its page is.

    .venv/bin/python -m bench.runs_show              # curate the 3,003 real conversations, then time the page

The run is `chatsift curate` with the defaults (the page itself off: [run] explore_page = false) on the real
ShareGPT sample in ../shared, in a temporary folder with its own chatsift cache (CHATSIFT_CACHE_DIR), so nothing is
embedded yet. Each page is `chatsift runs show` in a new process, as a user runs it (UMAP's numba compiling is paid
by every process):
- "map, cold": the first page, which embeds every first user turn (a run without the contamination check);
- "map, warm": the next ones, which read the vectors from the cache (as after a run that checked contamination);
- "no map": `--no-map`.
Medians of --repeats for the warm page and the one without the map. The last line is for the README.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
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

    folder = Path(tempfile.mkdtemp(prefix="bench-runs-show-"))
    env = {**os.environ, "CHATSIFT_CACHE_DIR": str(folder / "cache")}

    def chatsift(*argv: str) -> None:
        subprocess.run([sys.executable, "-m", "flows.cli", *argv], env=env, check=True, capture_output=True)

    try:
        dump = folder / "sample.json"
        with gzip.open(args.shared / SAMPLE, "rt", encoding="utf-8") as f:
            dump.write_text(json.dumps(json.load(f)), encoding="utf-8")
        config = folder / "config.json"
        config.write_text(json.dumps({"run": {"explore_page": False}}))
        chatsift("curate", str(dump), "--out", str(folder / "runs"), "--run-id", "r", "--config", str(config),
                 "--progress", "off")  # fmt: skip
        run = str(folder / "runs" / "r")
        cold = seconds(lambda: chatsift("runs", "show", run))
        medians = alternating_medians(
            {
                "map, warm": lambda: seconds(lambda: chatsift("runs", "show", run)),
                "no map": lambda: seconds(lambda: chatsift("runs", "show", run, "--no-map")),
            },
            args.repeats,
        )
        chatsift("runs", "show", run)
        size = (folder / "runs" / "r" / "explore.html").stat().st_size
        report = json.loads((folder / "runs" / "r" / "report.json").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"bench.runs_show: the real sample's run ({report['records_read']} read, {report['kept']} kept, "
        f"{report['dropped']} dropped), `chatsift runs show` in a new process: {medians['map, warm']:.1f} s with the "
        f"map from cached vectors, {cold:.1f} s embedding them first, {medians['no map']:.1f} s with --no-map "
        f"(medians of {args.repeats}); explore.html {size / 1024 / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
