"""chatsift's errors: one base, three kinds, each saying what happens next.

- ConfigError: an option, an argument or a config file is wrong. Nothing has run yet; fix the
  named key or flag.
- InputError: an input path (or a folder a command reads, such as a run or a shards folder) is
  missing or is not what the command expects. Nothing has run yet. A bad *record* inside an input
  is never an exception: it becomes a ledger row and the run goes on.
- ResourceError: something the run needs beside its inputs (a tokenizer, benchmark files, the
  embedding model, a GPU) cannot be loaded or used. Nothing has run yet.

The command line prints any ChatsiftError as one line, `chatsift: error: <message>`, and exits 2
(flows/cli). Each concrete error also keeps the builtin base it always had (ValueError, RuntimeError),
so code that caught that keeps working.
"""

from __future__ import annotations


class ChatsiftError(Exception):
    """Base of every error chatsift raises on purpose; its message says how to fix the cause."""


class ConfigError(ChatsiftError, ValueError):
    """An option, argument or config file is wrong; nothing has run yet."""


class InputError(ChatsiftError, ValueError):
    """An input path or folder is missing or of the wrong kind; nothing has run yet."""


class ResourceError(ChatsiftError):
    """A tokenizer, benchmark, model or device the run needs is unavailable; nothing has run yet."""
