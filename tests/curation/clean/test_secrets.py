"""Tests for the credential and PII kinds of curation/clean/secrets.py added for issue 15: AWS secret
access keys, Stripe keys, JWTs, keys split by invisible characters, French phone numbers, credit
cards, IPv4 addresses, and the conversation title.

The older kinds (OpenAI/GitHub/... keys, e-mail, international and North American phones) are
pinned in test_filters.py; its look-alike lists must stay unredacted too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from curation.clean.secrets import redact_secrets, redact_text
from schemas.config import SecretsConfig
from schemas.conversation import Conversation
from tests.helpers.conversations import conversation, sharegpt_turns
from tests.helpers.secret_cases import AWS_KEY_ID, AWS_SECRET, LOOK_ALIKES, PLANTED, USER_JWT

SECRETS = SecretsConfig()


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_secrets_redacts_planted_secret(kind: str) -> None:
    text, expected = PLANTED[kind]
    redacted, counts = redact_text(text, config=SECRETS)
    assert redacted == expected
    assert sum(counts.values()) == expected.count("<")


@pytest.mark.parametrize("kind", sorted(LOOK_ALIKES))
def test_secrets_leaves_look_alike(kind: str) -> None:
    text = LOOK_ALIKES[kind]
    assert redact_text(text, config=SECRETS) == (text, {})


def test_secrets_counts_each_new_kind_under_its_own_name() -> None:
    text = f"{USER_JWT} 4539 1488 0343 6467 54.210.33.17 06 12 34 56 78 sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    assert redact_text(text, config=SECRETS) == (
        "<JWT> <CREDIT_CARD> <IP_ADDRESS> <PHONE> <API_KEY>",
        {
            "jwts_redacted": 1,
            "credit_cards_redacted": 1,
            "ip_addresses_redacted": 1,
            "phone_numbers_redacted": 1,
            "api_keys_redacted": 1,
        },
    )


def test_secrets_new_kinds_can_be_switched_off() -> None:
    text = "4539 1488 0343 6467 at 54.210.33.17"
    off = SecretsConfig(redact_credit_cards=False, redact_ip_addresses=False)
    assert redact_text(text, config=off) == (text, {})
    assert redact_text(USER_JWT, config=SecretsConfig(redact_api_keys=False)) == (USER_JWT, {})


def test_secrets_stage_redacts_the_title_and_counts_it() -> None:
    titled = conversation(
        ("user", "Fix my resume please"),
        ("assistant", "Sure."),
        title="Resume of jane.roe@gmail.com, 06 12 34 56 78",
    )
    plain = conversation(("user", "Hello"), ("assistant", "Hi"), id="c2", title="Greeting at 192.168.1.1")
    result = redact_secrets([titled, plain], config=SECRETS)
    assert [c.title for c in result.kept] == ["Resume of <EMAIL>, <PHONE>", "Greeting at 192.168.1.1"]
    assert result.kept[0].turns == titled.turns
    assert result.kept[1] is plain
    assert result.changed == {
        "emails_redacted": 1,
        "phone_numbers_redacted": 1,
        "titles_redacted": 1,
        "conversations_redacted": 1,
    }


# Inputs built to make a backtracking regex take exponential or quadratic time, about 1 MB each.
ADVERSARIAL = {
    "jwt segments": "eyJ" + "a" * 1_000_000,
    "jwt dots": "eyJaaaaaaaaa." * 80_000,
    "split token": "sk-a\u200b" * 200_000,
    "split token without end": "a" * 1_000_000 + "\u200b",
    "aws id and base64 run": AWS_KEY_ID + " " + "Ab1/" * 250_000,
    "aws ids and tokens": (AWS_KEY_ID + " " + AWS_SECRET + "= ") * 15_000,
    "aws pairs": (AWS_KEY_ID + " " + AWS_SECRET + " ") * 15_000,
    "stripe": "sk_live_" + "aB1" * 330_000,
    "french pairs": "0" + " 12" * 330_000,
    "french pairs dotted": "06" + ".12" * 330_000,
    "digits and spaces": "4 " * 500_000,
    "digits": "4" * 1_000_000,
    "digit groups": "4539 " * 200_000,
    "dotted quads": "1.2.3.4." * 125_000,
    "dotted numbers": "54." * 330_000,
}


def test_secrets_patterns_run_in_linear_time_on_adversarial_input() -> None:
    # In another interpreter, killed at the timeout: a catastrophic pattern would run for hours on
    # one of these, a linear one takes about half a second per megabyte. The child names each input
    # before redacting it, so a timeout names the input that hung.
    script = (
        "import json, sys\n"
        "from curation.clean.secrets import redact_text\n"
        "from schemas.config import SecretsConfig\n"
        "for kind, text in json.load(sys.stdin).items():\n"
        "    print(kind, flush=True)\n"
        "    redact_text(text, config=SecretsConfig())\n"
        "print('done', flush=True)\n"
    )
    try:
        run = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps(ADVERSARIAL), capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as timeout:
        # The partial output comes back as bytes even in text mode.
        started = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else timeout.stdout or ""
        pytest.fail(f"redact_text ran past 120 s on the {started.splitlines()[-1:]} input: a pattern backtracks")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [*ADVERSARIAL, "done"]


# --- the real sample ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_conversations(sharegpt_sample: list[dict[str, Any]]) -> list[Conversation]:
    return [
        conversation(*sharegpt_turns(record["conversations"]), id=record["id"], record_index=i)
        for i, record in enumerate(sharegpt_sample)
    ]


@pytest.mark.shared_data
def test_real_sample_new_kinds_redact_only_secrets(sample_conversations: list[Conversation]) -> None:
    # What the sample holds of the new kinds (found by printing every candidate): one real-looking
    # server address in a user's question; the rest are public resolvers, placeholders, versions,
    # a documented test card and a placeholder Stripe key, none of which is anybody's secret.
    result = redact_secrets(sample_conversations, config=SECRETS)
    out = {c.id: "\n".join(t.content for t in c.turns) for c in result.kept}
    assert "13.250.2.198" not in out["1FQUTKz_45"] and "'1.2.3.4'" in out["1FQUTKz_45"]
    assert "8.8.8.8" in out["zGF0EmX_31"] and "1.1.1.1" in out["lOOqpT7_0"]
    assert '"1.0.0.0"' in out["SSUK6QM_11"] and "FBF-3.6.0.0-" in out["SRD5RhM_0"]
    assert "4242424242424242" in out["L9bF43Y_0"] and "sk_test_your_api_key_here" in out["L9bF43Y_0"]
    new_placeholders = ("<JWT>", "<CREDIT_CARD>", "<IP_ADDRESS>")
    assert sum(text.count(p) for text in out.values() for p in new_placeholders) == result.changed.get(
        "jwts_redacted", 0
    ) + result.changed.get("credit_cards_redacted", 0) + result.changed.get("ip_addresses_redacted", 0)
