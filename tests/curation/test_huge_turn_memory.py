"""A 7 MB answer (under ingest's 8 MiB record limit) costs every stage a bounded amount of memory.

Before the bounds, one such answer took a whole `chatsift curate` run from ~440 MB to 3.5 GB:
MinHash handed datasketch all 1.2M shingles at once (a permutations x shingles matrix; minhash_values
now takes a permutation at a time over them), and split
encoded the whole text in one call (~700 MB of ids, offsets and token strings). Split counts with
the chat-template encoder that tokenize reuses (ConversationEncoder), as a run does. The clean stage's
own bound is tested in tests/curation/clean/test_markdown_limits.py.
"""

from __future__ import annotations

import pytest

from tests.helpers.peak_memory import peak_memory

# ~7 MB of words, 1.2M of them, with enough distinct 5-grams that MinHash sees ~1.2M shingles.
_HUGE_TEXT = """
import random
rng = random.Random(7)
vocabulary = [f"w{k}" for k in range(20_000)]
text = " ".join(rng.choice(vocabulary) for _ in range(1_200_000))
"""

# (stage, setup, work) : work sets `result` to something the test checks, so the work is real.
_CASES = {
    "minhash": (
        _HUGE_TEXT
        + """
from curation.dedupe.minhash import minhash_values
from schemas.config import MinHashConfig
from tests.helpers.conversations import conversation
conv = conversation(("user", "Write a long text."), ("assistant", text))
""",
        """
values, has_shingles = minhash_values([conv], config=MinHashConfig())
result = values.shape[1] if has_shingles.all() else 0
""",
    ),
    "split": (
        _HUGE_TEXT
        + """
import tempfile
from pathlib import Path
from curation.shards.chat_templates import chat_template_for
from curation.shards.tokenization import ConversationEncoder
from curation.shards.tokenizer_load import BUILTIN_MISTRAL, load_tokenizer
from tests.helpers.conversations import conversation
converted = tempfile.TemporaryDirectory()  # removed when the process exits
tokenizer = load_tokenizer(BUILTIN_MISTRAL, cache_dir=Path(converted.name))
encoder = ConversationEncoder(tokenizer, chat_template_for("llama2"))
conv = conversation(("user", "A short question."), ("assistant", text))
""",
        """
result = encoder.content_token_counts([conv])
""",
    ),
}


@pytest.mark.parametrize("stage", list(_CASES))
def test_a_7_mb_answer_raises_the_peak_by_at_most_300_mib(stage: str) -> None:
    setup, work = _CASES[stage]
    growth, result = peak_memory(setup, work)[1:]
    assert growth < 300, f"{stage}: peak RSS rose by {growth} MiB"
    if stage == "minhash":
        assert result == 168  # bands x rows of the defaults
    else:
        short, huge = result
        assert 0 < short < 10 and huge > 1_200_000
