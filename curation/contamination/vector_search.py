"""Exact cosine search of normalized vectors with FAISS (IndexFlatIP), on the GPU when asked.

Exact search, not an approximate index: benchmark sets are small (MMLU's 14K questions are the
largest), so a flat index costs little and a flagged pair never depends on an index's recall.
"""

from __future__ import annotations

import faiss
import numpy as np

from schemas.errors import ResourceError


class DeviceUnavailableError(ResourceError, RuntimeError):
    """A GPU was asked for (contamination.device="gpu", or a GPU index) where torch or FAISS sees none."""


def faiss_gpu_count() -> int:
    """GPUs FAISS can use here: 0 with faiss-cpu or without a device."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def flat_ip_index(vectors: np.ndarray, *, gpu: bool) -> faiss.Index:
    """An exact inner-product index over `vectors` (rows normalized: inner product = cosine)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index: faiss.Index = faiss.IndexFlatIP(vectors.shape[1])
    if gpu:
        if faiss_gpu_count() == 0:
            raise DeviceUnavailableError("no GPU for FAISS: install the gpu extra (faiss-gpu) on a machine with CUDA")
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    return index


def search_top(index: faiss.Index, queries: np.ndarray, *, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of each query's k nearest vectors, best first; rows -1 past the index's size."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    if index.ntotal == 0:
        return scores, rows
    for start in range(0, len(queries), batch_size):
        d, i = index.search(queries[start : start + batch_size], k)
        scores[start : start + batch_size] = d
        rows[start : start + batch_size] = i
    return scores, rows
