"""flows.resources.embed_with_cache: a warm cache answers without loading the model, and a cache folder left by
another model of the same name is named, not mixed in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curation.contamination.embedding_cache import cached_dims, cached_embeddings, model_cache_dir
from flows import resources
from schemas.config import ContaminationConfig
from schemas.errors import ResourceError

MODEL = "all-MiniLM-L6-v2"


def test_a_warm_cache_answers_without_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSIFT_CACHE_DIR", str(tmp_path))
    config = ContaminationConfig(device="cpu")
    first = resources.embed_with_cache(["how do I sort a list?", "what is a monad?"], config)
    precision = resources.embedding_precision(config)
    assert first.embedded == 2 and cached_dims(tmp_path / "embeddings", MODEL, precision) == [384]
    resources.embedder_for.cache_clear()
    again = resources.embed_with_cache(["what is a monad?"], config)
    assert (again.embedded, again.reused) == (0, 1) and resources.embedder_for.cache_info().misses == 0
    np.testing.assert_array_equal(again.vectors[0], first.vectors[1])


def test_a_cache_folder_of_another_dimension_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSIFT_CACHE_DIR", str(tmp_path))
    root = tmp_path / "embeddings"
    config = ContaminationConfig(device="cpu")
    precision = resources.embedding_precision(config)
    folder = model_cache_dir(root, MODEL, 768, precision)
    folder.mkdir(parents=True)
    unit = np.full((1, 768), 1 / np.sqrt(768), np.float32)
    cached_embeddings(["left by another model"], embed=lambda texts: unit, folder=folder, dim=768)
    # a new text loads the model, which gives 384 dimensions
    with pytest.raises(ResourceError, match=r"holds 768-dimensional vectors, but all-MiniLM-L6-v2 gives 384"):
        resources.embed_with_cache(["a new text"], config)
    # with folders of two dimensions the model says which is its own
    model_cache_dir(root, MODEL, 384, precision).mkdir()
    assert resources.embed_with_cache(["a new text"], config).vectors.shape == (1, 384)


def test_loading_the_model_draws_no_progress_bar() -> None:
    """transformers' "Loading weights" bar would land in every CLI's stderr and every worker's log."""
    code = "from flows.resources import embedder_for; embedder_for('all-MiniLM-L6-v2', 'cpu')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert "Loading weights" not in done.stderr and "it/s]" not in done.stderr, done.stderr[-2000:]


def test_each_precision_keeps_its_own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 vectors differ from fp32 ones by up to ~0.004 in cosine: a run in one precision never reads the other's."""
    monkeypatch.setenv("CHATSIFT_CACHE_DIR", str(tmp_path))
    root, text = tmp_path / "embeddings", ["what is a monad?"]
    fp32 = resources.embed_with_cache(text, ContaminationConfig(device="cpu", precision="fp32"))
    bf16 = resources.embed_with_cache(text, ContaminationConfig(device="cpu", precision="bf16"))
    assert (fp32.embedded, bf16.embedded) == (1, 1)
    assert sorted(p.name for p in root.iterdir()) == ["all-MiniLM-L6-v2-d384", "all-MiniLM-L6-v2-d384-bf16"]
    assert cached_dims(root, MODEL, "fp32") == cached_dims(root, MODEL, "bf16") == [384]
    assert not np.array_equal(fp32.vectors, bf16.vectors)
    again = resources.embed_with_cache(text, ContaminationConfig(device="cpu", precision="bf16"))
    assert again.embedded == 0
    np.testing.assert_array_equal(again.vectors, bf16.vectors)
