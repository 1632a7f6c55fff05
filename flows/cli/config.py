"""`chatsift config`: every option with its default, as JSON."""

from __future__ import annotations

import argparse
import json

from schemas.config import CurationConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    print(json.dumps(CurationConfig().model_dump(mode="json"), indent=2))
    return 0
