"""Heavy objects the flows build once per process and pass into curation functions."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from curation.tokenizer_load import load_tokenizer


def cache_dir() -> Path:
    """chatsift's cache (converted tokenizers, later embeddings): $CHATSIFT_CACHE_DIR or ~/.cache/chatsift."""
    return Path(os.environ.get("CHATSIFT_CACHE_DIR", Path.home() / ".cache" / "chatsift"))


@lru_cache(maxsize=4)
def tokenizer_for(spec: str) -> Tokenizer:
    """The tokenizer for `spec`, loaded once per process (tasks in one worker share it)."""
    return load_tokenizer(spec, cache_dir=cache_dir() / "tokenizers")


def tokenizer_config_for(spec: str) -> Path | None:
    """The tokenizer_config.json beside a tokenizer given by path (it holds the jinja chat_template)."""
    path = Path(spec)
    folder = path if path.is_dir() else path.parent
    config = folder / "tokenizer_config.json"
    return config if path.exists() and config.is_file() else None
