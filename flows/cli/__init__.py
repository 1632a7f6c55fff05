"""The `chatsift` command: one table of subcommands, each a thin layer over a flow or a library call.

Every subcommand module gives `add_arguments(parser)` and `run(args) -> exit code`. Errors are
printed here and only here: a ChatsiftError (a wrong option, a missing input or resource, raised
before any work) becomes one line, `chatsift: error: ...`, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from flows.cli import config, contamination, curate, finetune, runs, scrape, serve, server, shards
from schemas.errors import ChatsiftError


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = (
    Command("curate", "curate ShareGPT pages, dumps or JSONL into clean Parquet", curate.add_arguments, curate.run),
    Command("demo", "run the whole pipeline on a small built-in sample", curate.add_demo_arguments, curate.run_demo),
    Command(
        "contamination",
        "check curated conversations against benchmark questions",
        contamination.add_arguments,
        contamination.run,
    ),
    Command(
        "server",
        "run a Prefect server (and UI) on 127.0.0.1 for chatsift's deployments",
        server.add_arguments,
        server.run,
    ),
    Command(
        "serve", "register and serve the deployments (nightly re-curation and more)", serve.add_arguments, serve.run
    ),
    Command("config", "print every option with its default, as JSON", config.add_arguments, config.run),
    Command("shards", "build, check or look into training shards", shards.add_arguments, shards.run),
    Command("runs", "list runs, or show which conversations entered or left between two", runs.add_arguments, runs.run),
    Command(
        "scrape", "fetch ShareGPT pages by id or URL into saved pages curate reads", scrape.add_arguments, scrape.run
    ),
    Command(
        "finetune",
        "fine-tune a causal LM on a run's packed shards (LoRA or full)",
        finetune.add_arguments,
        finetune.run,
    ),
)


def _version() -> str:
    from curation.runs.lineage import code_version

    return f"chatsift {code_version()}"


class _VersionAction(argparse.Action):
    """--version, resolved only when asked (it may run git)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="print chatsift's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatsift", description="Curate shared chat conversations into clean, deduplicated training shards."
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.run(args))
    except ChatsiftError as e:
        print(f"chatsift: error: {e}", file=sys.stderr)
        return 2
