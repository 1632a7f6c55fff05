"""Loading tokenizers from a spec: paths, folders, the built-in Mistral 7B v0.1, and clear errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer
from tokenizers.processors import TemplateProcessing

from curation.shards.tokenizer_load import (
    BUILTIN_MISTRAL,
    TokenizerUnavailableError,
    batch_token_counter,
    load_tokenizer,
)

TEXTS = [
    "Hello world",
    "def area(r):\n    return 3.14159 * r ** 2\n\n\n\tprint(area(2))",
    "  leading spaces,   runs   of spaces and trailing  ",
    "Как дела? 日本語のテキスト 😀👍🏽 naïve café",
    "",
]


def phi3_path(shared_data: Path) -> Path:
    return shared_data / "tokenizers" / "phi-3" / "tokenizer.json"


# --- files and folders ------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_a_tokenizer_json_path_and_its_folder_load_the_same_tokenizer(shared_data: Path, tmp_path: Path) -> None:
    by_path = load_tokenizer(str(phi3_path(shared_data)), cache_dir=tmp_path)
    by_folder = load_tokenizer(str(phi3_path(shared_data).parent), cache_dir=tmp_path)
    assert by_path.get_vocab() == by_folder.get_vocab()
    assert [e.ids for e in by_path.encode_batch(TEXTS)] == [e.ids for e in by_folder.encode_batch(TEXTS)]
    # It is the real Phi-3 file: its chat tokens are there (docs/defaults.md#tokenizer).
    assert by_path.token_to_id("<|user|>") == 32010 and by_path.token_to_id("<|assistant|>") == 32001
    assert list(tmp_path.iterdir()) == []  # only the built-in uses the cache


@pytest.mark.shared_data
def test_the_counter_counts_each_text_without_special_tokens(shared_data: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(phi3_path(shared_data)), cache_dir=tmp_path)
    # Make encode add BOS by default: the counter must still count the text's own tokens only.
    tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    assert tokenizer.encode("Hello world").ids[0] == 1
    expected = [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in TEXTS]
    assert batch_token_counter(tokenizer)(TEXTS) == expected
    assert batch_token_counter(tokenizer)([]) == []
    assert expected[0] < len(tokenizer.encode(TEXTS[0]).ids)


# --- the built-in Mistral 7B v0.1 ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentencepiece_mistral() -> Any:
    """Mistral 7B v0.1's own SentencePiece model, the reference the conversion must match."""
    pytest.importorskip("mistral_common", reason="the built-in tokenizer needs mistral-common")
    sentencepiece = pytest.importorskip("sentencepiece", reason="the built-in tokenizer needs sentencepiece")
    import importlib.resources

    model = importlib.resources.files("mistral_common").joinpath("data", "tokenizer.model.v1").read_bytes()
    return sentencepiece.SentencePieceProcessor(model_proto=model)


def cached_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


def test_builtin_mistral_is_converted_once_into_the_cache(sentencepiece_mistral: Any, tmp_path: Path) -> None:
    first = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    (cached,) = cached_files(tmp_path)  # one tokenizer.json, no temp file left behind
    assert cached.name == "tokenizer.json" and BUILTIN_MISTRAL in cached.parent.name
    written = cached.stat().st_mtime_ns

    second = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    assert cached.stat().st_mtime_ns == written and cached_files(tmp_path) == [cached]
    assert [e.ids for e in first.encode_batch(TEXTS)] == [e.ids for e in second.encode_batch(TEXTS)]
    assert first.get_vocab_size() == sentencepiece_mistral.get_piece_size()


def test_builtin_mistral_gives_the_sentencepiece_tokens(sentencepiece_mistral: Any, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    for text in TEXTS:
        assert tokenizer.encode(text, add_special_tokens=False).ids == sentencepiece_mistral.encode(text), text
    assert tokenizer.decode(tokenizer.encode(TEXTS[1]).ids) == TEXTS[1]
    # Like SentencePiece's encode, nothing is added around the text.
    assert tokenizer.encode("Hi", add_special_tokens=True).ids == sentencepiece_mistral.encode("Hi")


@pytest.mark.slow
@pytest.mark.shared_data
def test_builtin_mistral_matches_sentencepiece_on_the_real_sample(
    sentencepiece_mistral: Any, sharegpt_sample: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Every 5th real turn: code, tables, runs of spaces and many scripts."""
    texts = [t["value"] for record in sharegpt_sample for t in record["conversations"]][::5]
    counts = batch_token_counter(load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path))(texts)
    assert counts == [len(ids) for ids in sentencepiece_mistral.encode(texts)]


def test_a_damaged_cache_file_is_rebuilt(sentencepiece_mistral: Any, tmp_path: Path) -> None:
    load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    (cached,) = cached_files(tmp_path)
    cached.write_text('{"truncated": ')
    tokenizer = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    assert tokenizer.encode("Hello world", add_special_tokens=False).ids == sentencepiece_mistral.encode("Hello world")
    assert Tokenizer.from_file(str(cached)).get_vocab_size() == sentencepiece_mistral.get_piece_size()


def test_builtin_without_mistral_common_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mistral_common", None)  # makes the import fail
    with pytest.raises(TokenizerUnavailableError, match="pip install mistral-common sentencepiece"):
        load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)


# --- specs that name nothing loadable -----------------------------------------------------------------


def bad_specs(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "broken.json").write_text("{not json")
    return {
        "missing file": str(tmp_path / "nope" / "tokenizer.json"),
        "folder without tokenizer.json": str(tmp_path / "empty_folder"),
        "not a tokenizer": str(tmp_path / "broken.json"),
        "neither path nor hub name": "not a tokenizer!",
    }


@pytest.mark.parametrize(
    "case", ["missing file", "folder without tokenizer.json", "not a tokenizer", "neither path nor hub name"]
)
def test_a_bad_spec_raises_a_helpful_error(case: str, tmp_path: Path) -> None:
    spec = bad_specs(tmp_path)[case]
    with pytest.raises(TokenizerUnavailableError) as raised:
        load_tokenizer(spec, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert repr(spec) in message
    # It says what would work: every accepted kind of spec, and that the hub needs network.
    for hint in ("tokenizer.json path", "folder holding tokenizer.json", repr(BUILTIN_MISTRAL), "hub", "network"):
        assert hint in message, hint


def test_a_copied_tokenizer_folder_loads(sentencepiece_mistral: Any, tmp_path: Path) -> None:
    """A folder spec is any folder with a tokenizer.json, e.g. a saved model directory."""
    load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path / "cache")
    (cached,) = cached_files(tmp_path / "cache")
    shutil.copy(cached, tmp_path / "tokenizer.json")
    tokenizer = load_tokenizer(str(tmp_path), cache_dir=tmp_path / "other_cache")
    assert tokenizer.encode(TEXTS[2], add_special_tokens=False).ids == sentencepiece_mistral.encode(TEXTS[2])
    assert not (tmp_path / "other_cache").exists()


def test_a_conversion_that_differs_from_sentencepiece_is_refused_and_not_cached(
    sentencepiece_mistral: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tokenizers import normalizers

    from curation.shards import tokenizer_load

    convert = tokenizer_load._tokenizer_from_sentencepiece

    def without_dummy_prefix(processor: Any) -> Tokenizer:
        tokenizer = convert(processor)
        tokenizer.normalizer = normalizers.Replace(" ", "\u2581")  # SentencePiece prepends "▁"
        return tokenizer

    monkeypatch.setattr(tokenizer_load, "_tokenizer_from_sentencepiece", without_dummy_prefix)
    with pytest.raises(TokenizerUnavailableError, match="does not reproduce SentencePiece"):
        load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    assert cached_files(tmp_path) == []  # neither a bad tokenizer.json nor a temp file is left


def test_a_text_longer_than_a_block_is_counted_within_two_tokens_a_cut(
    sentencepiece_mistral: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Texts over COUNT_BLOCK_CHARS are counted block by block (memory); each cut is before whitespace.
    from curation.shards import tokenizer_load

    tokenizer = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path)
    text = " ".join(TEXTS * 400)
    exact = len(tokenizer.encode(text, add_special_tokens=False).ids)
    monkeypatch.setattr(tokenizer_load, "COUNT_BLOCK_CHARS", 1_000)
    cuts = len(list(tokenizer_load._count_blocks(text))) - 1
    [blocked, short] = batch_token_counter(tokenizer)([text, TEXTS[0]])
    assert cuts >= 30 and abs(blocked - exact) <= 2 * cuts and blocked > 0.95 * exact
    assert short == len(tokenizer.encode(TEXTS[0], add_special_tokens=False).ids)
