"""`chatsift config [--json]`: every option with its default, as commented TOML a config file can start from."""

from __future__ import annotations

import argparse
import json

from schemas.config import CurationConfig
from schemas.config.file import config_toml


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", help="print the options as one JSON object instead (what --config also reads)"
    )


def run(args: argparse.Namespace) -> int:
    config = CurationConfig()
    if args.json:
        print(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        print(config_toml(config), end="")
    return 0
