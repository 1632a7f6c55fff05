"""Every DropReason is reachable: one trigger per reason, through the real entry points.

Adding a reason to schemas.ledger.DropReason without a trigger here fails the first test.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from curation.clean.batch import clean_batch
from curation.dedupe.exact import drop_exact_duplicates
from curation.dedupe.minhash import drop_near_duplicates
from curation.ingest.read import read_conversations
from curation.scrape.fetch import fetch_pages, scrape_dropped, targets_from_ids, targets_from_urls
from curation.scrape.store import RawPageStore
from curation.shards.chat_templates import chat_template_for
from curation.shards.pack import pack_conversations
from curation.shards.split import count_turn_texts, split_long_conversations
from curation.shards.tokenization import tokenize_conversations
from curation.shards.tokenizer_load import load_tokenizer
from demo.chatgpt_html import sharegpt_page_html
from schemas import DROP_REASONS, Conversation, Dropped
from schemas.config import (
    BlockedConfig,
    ContaminationConfig,
    CurationConfig,
    ExactDedupeConfig,
    IngestConfig,
    LanguageConfig,
    MinHashConfig,
    ModelConfig,
    ScrapeConfig,
    ShardsConfig,
    SplitConfig,
)
from schemas.contamination import BenchmarkItem
from schemas.shards import TokenizedConversation
from tests.helpers.conversations import conversation

GOOD = [
    {"from": "human", "value": "What is the capital of France?"},
    {"from": "gpt", "value": "The capital of France is Paris."},
]


def _ingest(tmp: Path, name: str, data: bytes, config: IngestConfig = IngestConfig()) -> list[Dropped]:
    path = tmp / name
    path.write_bytes(data)
    return [r for r in read_conversations(path, config=config) if isinstance(r, Dropped)]


def _dangling_link(tmp: Path) -> list[Dropped]:
    (tmp / "gone.json").symlink_to(tmp / "nowhere.json")
    return [r for r in read_conversations(tmp, config=IngestConfig()) if isinstance(r, Dropped)]


def _clean(conv: Conversation, config: CurationConfig = CurationConfig()) -> list[Dropped]:
    return clean_batch([conv], config=config)[1]


QA = (("user", "What is the capital of France?"), ("assistant", "The capital of France is Paris."))
LONG_ANSWER = " ".join(f"Paris has been the capital for a long time, reason number {i}." for i in range(40))


def _exact(*convs: Conversation) -> list[Dropped]:
    return drop_exact_duplicates(convs, config=ExactDedupeConfig()).dropped


def _near(*convs: Conversation) -> list[Dropped]:
    return drop_near_duplicates(convs, config=MinHashConfig()).dropped


CONTAMINATING = (
    "A bakery sells muffins in boxes of 6. If Priya buys 4 boxes and gives away 7 muffins, how many are left?"
)


def _contamination(conv: Conversation, **options: object) -> list[Dropped]:
    from curation.contamination.check import build_benchmark_index, check_contamination
    from curation.contamination.embedding_cache import cached_embeddings
    from flows.resources import embed_normalized, embedder_for

    embed = embed_normalized(embedder_for("all-MiniLM-L6-v2", "cpu"), ContaminationConfig())
    items = [BenchmarkItem(benchmark="toy", item_id="1", text=CONTAMINATING)]
    config = ContaminationConfig(**options)  # type: ignore[arg-type]
    index = build_benchmark_index(items, embed([CONTAMINATING]), config=config, gpu=False)
    return check_contamination(
        [conv],
        index=index,
        embed=lambda texts: cached_embeddings(texts, embed=embed, folder=None, dim=384),
        config=config,
        decisions={},
    ).dropped


def _split(conv: Conversation, max_tokens: int) -> list[Dropped]:
    # one token per word, so the arithmetic is visible
    def count(texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    config = SplitConfig(max_tokens=max_tokens, turn_overhead_tokens=0)
    return split_long_conversations([conv], count_tokens=count_turn_texts(count), config=config).dropped


SCRAPE = ScrapeConfig(
    allowed_hosts=("127.0.0.1",), url_template="http://127.0.0.1:9/c/{id}", per_host_rate=0, max_tries=2
)


def _scrape(
    tmp: Path, respond: Callable[[httpx.Request], httpx.Response], config: ScrapeConfig = SCRAPE
) -> list[Dropped]:
    """Fetch one page id from an in-process transport answering with `respond`."""

    async def no_sleep(seconds: float) -> None:
        return None

    async def run() -> list[Dropped]:
        targets = targets_from_ids(["abc1234"], config, input_file="ids.txt").targets
        async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as client:
            results = await fetch_pages(targets, client=client, config=config, store=RawPageStore(tmp), sleep=no_sleep)
        return scrape_dropped(results)

    return asyncio.run(run())


TRIGGERS: dict[str, Callable[[Path], list[Dropped]]] = {
    "empty_input": lambda t: _ingest(t, "empty.json", b""),
    "invalid_utf8": lambda t: _ingest(t, "bad.jsonl", b'{"id": "a\xff", "conversations": []}\n'),
    "invalid_json": lambda t: _ingest(t, "bad.jsonl", b'{"id": "a", "conversations": [}\n'),
    "no_next_data": lambda t: _ingest(t, "page.html", b"<html><body>not found</body></html>"),
    "no_page_content": lambda t: _ingest(
        t,
        "page.html",
        b'<html><script id="__NEXT_DATA__" type="application/json">'
        b'{"props":{"pageProps":{"id":"abc"}}}</script></html>',
    ),
    "record_too_large": lambda t: _ingest(
        t,
        "big.html",
        sharegpt_page_html(page_id="big1", items=GOOD).encode() + b" " * 5000,
        IngestConfig(max_record_bytes=4096),
    ),
    "unknown_format": lambda t: _ingest(t, "x.jsonl", b'{"foo": 1}\n'),
    "invalid_record": lambda t: _ingest(
        t, "x.jsonl", b'{"id": "a", "conversations": [{"from": "human", "value": 3}]}\n'
    ),
    "unsafe_id": lambda t: _ingest(t, "x.html", sharegpt_page_html(page_id="../../etc/passwd", items=GOOD).encode()),
    "unknown_role": lambda t: _ingest(
        t, "x.jsonl", json.dumps({"id": "a", "conversations": [*GOOD, {"from": "tool", "value": "{}"}]}).encode()
    ),
    "too_deeply_nested": lambda t: _ingest(t, "deep.jsonl", b"[" * 1000 + b"]" * 1000 + b"\n"),
    "not_a_readable_file": lambda t: _dangling_link(t),
    # the gzip trailer cut off: the record before it is kept, the damage is the one drop
    "corrupt_compression": lambda t: _ingest(
        t, "cut.jsonl.gz", gzip.compress(b'{"id": "a", "conversations": []}\n')[:-4]
    ),
    "truncated_html": lambda t: _clean(
        conversation(
            ("user", "Show me a list please."),
            ("assistant", '<div class="markdown prose w-full break-words dark:prose-invert light"><ol><li><p>one</p>'),
        )
    ),
    "html_too_deep": lambda t: _clean(
        conversation(
            ("user", "Say x inside many spans."),
            ("assistant", '<div class="markdown prose">' + "<span>" * 1000 + "x" + "</span>" * 1000 + "</div>"),
        )
    ),
    "html_too_large": lambda t: _clean(
        conversation(("user", "Break the line a lot."), ("assistant", "<p>" + "a<br>" * 100_001 + "</p>"))
    ),
    "no_turns": lambda t: _clean(conversation()),
    "empty_turn": lambda t: _clean(
        conversation(
            ("user", "   "),
            ("assistant", "An answer to nothing at all."),
            ("user", "Another question here?"),
            ("assistant", "Another answer."),
        )
    ),
    "roles_not_alternating": lambda t: _clean(conversation(QA[0], QA[1], QA[1], ("user", "ok?"), QA[1])),
    "no_assistant_turn": lambda t: _clean(conversation(("user", "Is anybody there at all?"))),
    "too_short": lambda t: _clean(conversation(("user", "hi"), ("assistant", "hey"))),
    "model_not_allowed": lambda t: _clean(
        conversation(*QA, model="Model: Default (GPT-3.5)"),
        CurationConfig(model=ModelConfig(allowed_models=("Model: GPT-4",))),
    ),
    "blocked_word": lambda t: _clean(
        conversation(QA[0], ("assistant", "As an AI language model, I think it is Paris.")),
        CurationConfig(blocked=BlockedConfig(mode="drop")),
    ),
    "blocked_response": lambda t: _clean(
        conversation(QA[0], ("assistant", "Too many requests in 1 hour. Try again later."))
    ),
    "all_turns_unsupervised": lambda t: _clean(
        conversation(QA[0], ("assistant", "As an AI language model, I believe Paris."))
    ),
    "language_not_allowed": lambda t: _clean(
        conversation(
            ("user", "Quelle est la capitale de la France, et pourquoi a-t-elle été choisie comme capitale ?"),
            ("assistant", "La capitale de la France est Paris."),
        ),
        CurationConfig(language=LanguageConfig(allowed=("en",))),
    ),
    "exact_duplicate": lambda t: _exact(conversation(*QA, id="a"), conversation(*QA, id="b")),
    "same_prompts": lambda t: _exact(
        conversation(QA[0], ("assistant", "Paris is the capital of France."), id="a"), conversation(*QA, id="b")
    ),
    "prefix_of_longer": lambda t: _exact(
        conversation(*QA, ("user", "And of Spain?"), ("assistant", "Madrid."), id="a"), conversation(*QA, id="b")
    ),
    "near_duplicate": lambda t: _near(
        conversation(QA[0], ("assistant", LONG_ANSWER), id="a"),
        conversation(QA[0], ("assistant", LONG_ANSWER.replace("number 7.", "number seven.")), id="b"),
    ),
    "round_too_long": lambda t: _split(conversation(QA[0], ("assistant", LONG_ANSWER)), max_tokens=50),
    "benchmark_contamination": lambda t: _contamination(conversation(("user", CONTAMINATING), QA[1])),
    "contaminated_rounds_cut": lambda t: _contamination(
        conversation(*QA, ("user", CONTAMINATING), ("assistant", "17.")), action="cut_before_turn"
    ),
    "no_supervised_tokens": lambda t: tokenize_conversations(
        [conversation(QA[0], ("assistant", QA[1][1], 0.0))],
        tokenizer=load_tokenizer("mistral-7b-v0.1", cache_dir=t / "cache"),
        template=chat_template_for("llama2"),
    )[1],
    "longer_than_max_seq_len": lambda t: pack_conversations(
        [TokenizedConversation(conversation_id="a", input_ids=tuple(range(10)), loss_mask=(0,) + (1,) * 9)],
        config=ShardsConfig(max_seq_len=8),
    )[1],
    "invalid_id": lambda t: scrape_dropped(targets_from_ids(["../../etc/passwd"], SCRAPE).dropped),
    "invalid_url": lambda t: scrape_dropped(targets_from_urls(["http://127.0.0.1:9/c/../etc"], SCRAPE).dropped),
    "host_not_allowed": lambda t: scrape_dropped(targets_from_urls(["https://evil.example/c/abc1234"], SCRAPE).dropped),
    "redirect_off_allowlist": lambda t: _scrape(
        t, lambda r: httpx.Response(302, headers={"location": "https://evil.example/c/abc1234"})
    ),
    "not_found": lambda t: _scrape(t, lambda r: httpx.Response(404)),
    "gone": lambda t: _scrape(t, lambda r: httpx.Response(410)),
    "blocked": lambda t: _scrape(t, lambda r: httpx.Response(451)),
    "page_too_large": lambda t: _scrape(
        t, lambda r: httpx.Response(200, content=b"x" * 200), SCRAPE.model_copy(update={"max_page_bytes": 100})
    ),
    "truncated_body": lambda t: _scrape(
        t, lambda r: httpx.Response(200, headers={"content-length": "99"}, content=b"<")
    ),
    "fetch_failed": lambda t: _scrape(t, lambda r: httpx.Response(500)),
}


def test_every_reason_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(DROP_REASONS)


@pytest.mark.parametrize("reason", DROP_REASONS)
def test_reason_is_triggered(reason: str, tmp_path: Path) -> None:
    dropped = TRIGGERS[reason](tmp_path)
    assert [d.reason for d in dropped] == [reason], dropped
    assert dropped[0].stage and dropped[0].conversation_id


def test_gzip_input_reaches_the_same_reasons(tmp_path: Path) -> None:
    data = gzip.compress(b'{"foo": 1}\n')
    assert [d.reason for d in _ingest(tmp_path, "x.jsonl.gz", data)] == ["unknown_format"]
