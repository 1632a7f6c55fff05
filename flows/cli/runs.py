"""`chatsift runs list|diff|show`: list the runs in a folder, diff two runs (curation/runs/diff.py does the work),
and write one run's explore.html (curation/runs/explore.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Entries shown per side in the text diff when --limit is not given; --json shows every entry.
DEFAULT_TEXT_LIMIT = 20


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative: pass 0 or more")
    return value


def add_arguments(p_runs: argparse.ArgumentParser) -> None:
    """`runs diff A B [--json] [--limit N]` and `runs list OUT`."""
    runs_sub = p_runs.add_subparsers(dest="runs_command", required=True)
    p_diff = runs_sub.add_parser(
        "diff", help="conversations kept in one run and not the other, with the ledger's reason, and config changes"
    )
    p_diff.add_argument("a", type=Path, help="the earlier run directory (<out>/<run_id>)")
    p_diff.add_argument("b", type=Path, help="the later run directory (<out>/<run_id>)")
    p_diff.add_argument("--json", action="store_true", help="print the diff as JSON (every entry unless --limit)")
    p_diff.add_argument(
        "--limit",
        type=_count,
        default=None,
        help=f"entries to show per list (default {DEFAULT_TEXT_LIMIT}; with --json, all)",
    )
    p_list = runs_sub.add_parser("list", help="one line per run under OUT: id, finished, read/kept/dropped, config")
    p_list.add_argument("out", type=Path, help="the --out folder the runs were written to")
    p_show = runs_sub.add_parser(
        "show",
        help="write RUN/explore.html: counts, sampled drops as text by reason, duplicates, splits, length and token "
        "distributions, an embedding map",
    )
    p_show.add_argument("run_dir", metavar="RUN", type=Path, help="a run directory (<out>/<run_id>)")
    p_show.add_argument("--open", action="store_true", help="open the page in the default browser once written")
    p_show.add_argument(
        "--no-map",
        action="store_true",
        help="leave out the embedding map (UMAP over MiniLM vectors of the first user turns: docs/defaults.md#run "
        "gives its cost)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `chatsift runs ...`; a path that is no run directory raises RunDirError (exit 2)."""
    # Imported here so the rest of the CLI does not pay for polars when it is not used.
    from curation.runs.diff import (
        diff_runs,
        list_runs,
        load_run,
        run_diff_json,
        run_diff_text,
        run_list_text,
    )

    if args.runs_command == "show":
        from curation.runs.diff import check_run_dir
        from curation.runs.explore import ExploreTools, run_config, write_explore
        from flows.resources import explore_tools
        from schemas.errors import ResourceError

        run_dir = check_run_dir(args.run_dir)
        try:
            tools = explore_tools(run_config(run_dir), embedding_map=not args.no_map)
        except ResourceError as e:
            print(f"no token histograms: {e}", file=sys.stderr)
            tools = ExploreTools()
        page = write_explore(run_dir, tools=tools)
        print(page)
        if args.open:
            import webbrowser

            webbrowser.open(page.resolve().as_uri())
        return 0
    if args.runs_command == "list":
        runs = list_runs(args.out)
        if not runs:
            print(f"no runs under {args.out} (a run directory holds report.json)", file=sys.stderr)
        print(run_list_text(runs), end="")
        return 0
    diff = diff_runs(load_run(args.a), load_run(args.b))
    if args.json:
        print(json.dumps(run_diff_json(diff, limit=args.limit), indent=2, ensure_ascii=False))
    else:
        print(run_diff_text(diff, limit=DEFAULT_TEXT_LIMIT if args.limit is None else args.limit), end="")
    return 0
