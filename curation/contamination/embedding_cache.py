"""Embeddings cached on disk by (model, text hash), so a re-curation run embeds only new text.

The cache for one model is a folder of Parquet parts; each call that embeds something adds one
part (written atomically under a unique name, so concurrent runs never clobber each other).
"""

from __future__ import annotations

import glob
import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from curation.parquet import atomic_write_table
from schemas.arrow import embedding_cache_schema
from schemas.config.contamination import EmbeddingPrecision

Embed = Callable[[list[str]], np.ndarray]


class CachedEmbeddings(NamedTuple):
    vectors: np.ndarray  # one row per input text, float32
    embedded: int  # distinct texts embedded now
    reused: int  # distinct texts found in the cache


def text_hash(text: str) -> str:
    """blake2b-128 of the text's UTF-8 bytes: the cache key within one model."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def model_cache_dir(root: Path, model: str, dim: int, precision: EmbeddingPrecision = "fp32") -> Path:
    """The folder holding one model's vectors; the dimension and the precision they were computed in are part of the
    key (bf16 vectors differ from fp32 ones by up to ~0.004 in cosine, so the two never mix). fp32 folders carry no
    suffix, as before precision was an option."""
    return root / f"{_model_slug(model)}-d{dim}{_precision_suffix(precision)}"


def _model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def _precision_suffix(precision: EmbeddingPrecision) -> str:
    return "" if precision == "fp32" else f"-{precision}"


def cached_dims(root: Path, model: str, precision: EmbeddingPrecision = "fp32") -> list[int]:
    """The dimensions `root` holds a cache folder of `model` in `precision` for (one, unless the name served two
    models)."""
    slug = _model_slug(model)
    pattern = rf"{re.escape(slug)}-d(\d+){re.escape(_precision_suffix(precision))}"
    found = (re.fullmatch(pattern, p.name) for p in root.glob(f"{glob.escape(slug)}-d*"))
    return sorted(int(m.group(1)) for m in found if m)


def _lookup(folder: Path, hashes: list[str]) -> dict[str, np.ndarray]:
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts or not hashes:
        return {}
    found = (
        pl.scan_parquet(parts)
        .filter(pl.col("text_hash").is_in(hashes))
        .unique(subset="text_hash", keep="first")
        .collect()
    )
    if found.height == 0:
        return {}
    matrix = found["vector"].to_numpy()
    return dict(zip(found["text_hash"].to_list(), np.asarray(matrix, dtype=np.float32), strict=True))


def cached_embeddings(texts: Sequence[str], *, embed: Embed, folder: Path | None, dim: int) -> CachedEmbeddings:
    """Vectors for `texts`: each distinct text embedded at most once, and never again once cached.

    `embed` returns one normalized float32 row per text. `folder=None` turns the cache off.
    """
    keys = [text_hash(t) for t in texts]
    first: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        first.setdefault(key, text)
    known = _lookup(folder, list(first)) if folder is not None else {}
    missing = [k for k in first if k not in known]
    if missing:
        fresh = np.asarray(embed([first[k] for k in missing]), dtype=np.float32).reshape(len(missing), dim)
        known.update(zip(missing, fresh, strict=True))
        if folder is not None:
            table = pa.table(
                {
                    "text_hash": pa.array(missing, pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(fresh.reshape(-1), pa.float32()), dim),
                }
            )
            part = folder / f"part-{uuid.uuid4().hex}.parquet"
            atomic_write_table(part, table, schema=embedding_cache_schema(dim))
    vectors = np.stack([known[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)
    return CachedEmbeddings(vectors, len(missing), len(first) - len(missing))
