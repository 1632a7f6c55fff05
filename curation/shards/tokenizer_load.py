"""Load the tokenizer that counts tokens (split) and builds training rows, from a spec string.

A spec is a tokenizer.json path, a folder holding tokenizer.json, the built-in "mistral-7b-v0.1",
or a Hugging Face hub name (needs network). The built-in comes from the PyPI package
mistral-common, which ships Mistral 7B v0.1's SentencePiece model, so a fresh machine with no hub
access still gets a real tokenizer. It is converted once into `cache_dir` and reused.

Why the conversion is done here and not with transformers' converter: transformers 5.23's
LlamaTokenizer ranks BPE merges by the joined piece's id, while SentencePiece merges by the
joined piece's score and gives whitespace-only pieces the lowest score. Its tokenizer.json
therefore encodes runs of spaces differently ("\\n    return" -> "▁▁▁▁" "return" instead of
"▁▁▁" "▁return"): 2,289 of the 21,480 turns of the real ShareGPT sample got different tokens.
Ranking merges by score, as built below, reproduced SentencePiece on all of them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from schemas.errors import ResourceError

__all__ = ["BUILTIN_MISTRAL", "TokenizerUnavailableError", "batch_token_counter", "load_tokenizer"]

BUILTIN_MISTRAL = "mistral-7b-v0.1"
# Bump when the conversion below changes, so caches built by older code are not reused.
_CONVERSION_VERSION = "1"
_SPACE = "\u2581"  # SentencePiece's visible space, "▁"

# A text longer than this is counted in blocks cut before whitespace: one encoding of a 7 MB answer
# held ~700 MB (ids, offsets and token strings of 1.2M tokens). Each cut may shift the count by a
# token or two, nothing beside a text this far past any piece's budget.
COUNT_BLOCK_CHARS = 1 << 20
_WHITESPACE = re.compile(r"\s")

# "owner/name" or "name" as the hub spells repositories; anything else is treated as a path.
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")

_ACCEPTED = (
    "accepted specs: a tokenizer.json path, a folder holding tokenizer.json, "
    f"the built-in {BUILTIN_MISTRAL!r} (works offline; needs `pip install mistral-common sentencepiece`), "
    "or a Hugging Face hub name such as 'mistralai/Mistral-7B-v0.1' (needs network access to "
    "huggingface.co; without it, download tokenizer.json elsewhere and pass its path)"
)

# Strings the converted tokenizer must encode exactly as SentencePiece does: plain words, runs of
# spaces (where merge order matters), indented code, tabs, newlines, non-Latin scripts and an
# emoji (byte fallback).
_CHECK_TEXTS = (
    "Hello world",
    "  two leading spaces and  a double",
    "def f(x):\n    return x ** 2  # square\n\n\tdone",
    "Привет, мир! 你好，世界。 ¿Qué tal? 😀",
    "",
)


class TokenizerUnavailableError(ResourceError, ValueError):
    """The spec names no tokenizer that can be loaded here; the message says how to fix it."""


def _unavailable(spec: str, problem: str) -> TokenizerUnavailableError:
    return TokenizerUnavailableError(f"cannot load tokenizer {spec!r}: {problem}; {_ACCEPTED}")


def load_tokenizer(spec: str, *, cache_dir: Path) -> Tokenizer:
    """The tokenizer `spec` names; the built-in is converted into `cache_dir` on first use."""
    if spec == BUILTIN_MISTRAL:
        return _builtin_mistral(cache_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise _unavailable(spec, f"the folder {path} holds no tokenizer.json")
        path = path / "tokenizer.json"
    if path.is_file():
        return _from_file(spec, path)
    if path.suffix == ".json":
        raise _unavailable(spec, f"no such file: {path}")
    if not _HUB_NAME.fullmatch(spec):
        raise _unavailable(spec, f"no such file or folder as {path}, and not a hub name")
    return _from_hub(spec)


def batch_token_counter(tokenizer: Tokenizer) -> Callable[[Sequence[str]], list[int]]:
    """A function giving each text's token count, without special tokens (no BOS/EOS): the chat
    template's own tokens are the split stage's per-turn overhead, not part of the text."""

    def count_tokens(texts: Sequence[str]) -> list[int]:
        # One batch call: tokenizers spreads a batch over its thread pool. (encode_batch_fast,
        # 0.21+, measured no faster on the real sample.)
        fitting = [text if len(text) <= COUNT_BLOCK_CHARS else "" for text in texts]
        counts = [len(encoding.ids) for encoding in tokenizer.encode_batch(fitting, add_special_tokens=False)]
        for k, text in enumerate(texts):
            if len(text) > COUNT_BLOCK_CHARS:
                # Block by block, so only one block's encoding is held at a time.
                blocks = _count_blocks(text)
                counts[k] = sum(len(tokenizer.encode(block, add_special_tokens=False).ids) for block in blocks)
        return counts

    return count_tokens


def _count_blocks(text: str) -> Iterator[str]:
    """`text` cut before whitespace into blocks of about COUNT_BLOCK_CHARS, for counting only."""
    start = 0
    while len(text) - start > COUNT_BLOCK_CHARS:
        cut = _WHITESPACE.search(text, start + COUNT_BLOCK_CHARS)
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]


def _from_file(spec: str, path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    # tokenizers reports an unparsable file as a plain Exception.
    except Exception as e:
        raise _unavailable(spec, f"{path} is not a valid tokenizer.json ({e})") from e


def _from_hub(spec: str) -> Tokenizer:
    try:
        return Tokenizer.from_pretrained(spec)
    # The hub client raises network, HTTP and missing-file errors of several types, and
    # tokenizers a plain Exception; to the caller each means the same: not available here.
    except Exception as e:
        raise _unavailable(spec, f"the Hugging Face hub could not provide it (offline? no such repo?): {e}") from e


# --- the built-in Mistral 7B v0.1 -------------------------------------------------------------


def _builtin_mistral(cache_dir: Path) -> Tokenizer:
    model_bytes = _mistral_model_bytes()
    # Keyed by the model's bytes and the conversion version: a new mistral-common or a changed
    # conversion gets its own file instead of silently reusing a stale one.
    key = hashlib.blake2b(model_bytes + _CONVERSION_VERSION.encode(), digest_size=8).hexdigest()
    target = cache_dir / f"{BUILTIN_MISTRAL}-{key}" / "tokenizer.json"
    if target.is_file():
        try:
            return Tokenizer.from_file(str(target))
        # tokenizers raises a plain Exception for an unreadable file (a disk error, a hand
        # edit): the cache is only a cache, so rebuild it below rather than fail the run.
        except Exception:
            pass
    return _convert_and_cache(model_bytes, target)


def _mistral_model_bytes() -> bytes:
    try:
        resource = importlib.resources.files("mistral_common").joinpath("data", "tokenizer.model.v1")
        return resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise _unavailable(BUILTIN_MISTRAL, f"mistral-common's tokenizer.model.v1 is not installed ({e})") from e


def _sentencepiece_processor(model_bytes: bytes) -> Any:
    try:
        import sentencepiece
    except ModuleNotFoundError as e:
        raise _unavailable(BUILTIN_MISTRAL, "converting it needs the sentencepiece package") from e
    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes)


def _convert_and_cache(model_bytes: bytes, target: Path) -> Tokenizer:
    processor = _sentencepiece_processor(model_bytes)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a reader never sees a half-written file, and two
    # processes converting at once each rename a complete one.
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tokenizer.", suffix=".json.tmp")
    os.close(fd)
    temp = Path(temp_name)
    try:
        _tokenizer_from_sentencepiece(processor).save(str(temp))
        # Check the file as saved, the thing later runs will load.
        converted = Tokenizer.from_file(str(temp))
        _check_same_tokens(converted, processor)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return converted


def _tokenizer_from_sentencepiece(processor: Any) -> Tokenizer:
    """A `tokenizers` BPE equivalent of a SentencePiece BPE model with byte fallback."""
    size = processor.get_piece_size()
    vocab = {processor.id_to_piece(i): i for i in range(size)}
    special = [i for i in range(size) if processor.is_control(i) or processor.is_unknown(i)]
    skip = set(special) | {i for i in range(size) if processor.is_byte(i) or processor.is_unused(i)}
    mergeable = {processor.id_to_piece(i) for i in range(size) if i not in skip}
    # SentencePiece merges the adjacent pair whose joined piece scores highest; `tokenizers`
    # merges the pair ranked first. So every way of building a piece from two pieces is ranked
    # by the built piece's score (ties by id, for a stable file).
    ranked = []
    for piece in mergeable:
        score, piece_id = processor.get_score(vocab[piece]), vocab[piece]
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((-score, piece_id, vocab[left], left, right))
    ranked.sort()
    unk = processor.id_to_piece(processor.unk_id())
    merges = [(left, right) for *_, left, right in ranked]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    # The model's normalizer is the identity with a dummy prefix: spaces become "▁" and one is
    # prepended, as SentencePiece does before encoding.
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(_SPACE), normalizers.Replace(" ", _SPACE)])
    # SentencePiece encodes word by word, a word being a run of "▁" and the text up to the next
    # "▁"; splitting the same way means no merge can cross a word boundary here either.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(f"{_SPACE}+[^{_SPACE}]*|[^{_SPACE}]+"), behavior="isolated")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    # <unk>, <s>, </s> are recognised but never added on encode (no post-processor), as
    # SentencePiece's encode and the Phi-3 tokenizer.json behave: training rows add BOS/EOS
    # explicitly, so every supported tokenizer is used the same way.
    tokenizer.add_special_tokens(
        [AddedToken(processor.id_to_piece(i), special=True, normalized=False) for i in special]
    )
    return tokenizer


def _check_same_tokens(converted: Tokenizer, processor: Any) -> None:
    if converted.get_vocab_size(with_added_tokens=True) != processor.get_piece_size():
        raise _unavailable(BUILTIN_MISTRAL, "the converted vocabulary differs in size from the SentencePiece model")
    for text in _CHECK_TEXTS:
        expected = processor.encode(text)
        got = converted.encode(text, add_special_tokens=False).ids
        if got != expected:
            raise _unavailable(
                BUILTIN_MISTRAL,
                f"the conversion does not reproduce SentencePiece on {text!r} ({got} != {expected}); "
                "pass a tokenizer.json path instead",
            )
