"""What a terminal shows of a command's output: its text without the escape codes of colours and cursor moves."""

from __future__ import annotations

import re

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal_text(output: str) -> str:
    return _ESCAPES.sub("", output)
