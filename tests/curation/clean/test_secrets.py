"""Tests for the credential and PII kinds of curation/clean/secrets.py added for issue 15: AWS secret
access keys, Stripe keys, JWTs, keys split by invisible characters, French phone numbers, credit
cards, IPv4 addresses, and the conversation title.

The older kinds (OpenAI/GitHub/... keys, e-mail, international and North American phones) are
pinned in test_filters.py; its look-alike lists must stay unredacted too.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest

from curation.clean.secrets import redact_secrets, redact_text
from schemas.config import SecretsConfig
from schemas.conversation import Conversation
from tests.helpers.conversations import conversation, sharegpt_turns

SECRETS = SecretsConfig()
OPENAI_KEY = "sk-" + "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5dE7fG9hJ1kL3"
AWS_KEY_ID = "AKIAZ7Q2M4N6P8R2T4V6"
AWS_SECRET = "Xq9/Lm2Kp7Rt4Vw8Yz1Bc5Df3Gh6Jk0Np2Qs4Tu7"  # 40 characters of base64, like a real one
GIT_SHA = "3f9a1c2e8b7d6f5a4c3b2a1908f7e6d5c4b3a291"


def b64url(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def jwt(
    header: dict[str, Any], payload: dict[str, Any], signature: str = "Qm9n7Xk2LpR4tV8wZ1yB3cD5fG7hJ9kM0nP2qS4uW6x"
) -> str:
    return f"{b64url(header)}.{b64url(payload)}.{signature}"


USER_JWT = jwt({"alg": "HS256", "typ": "JWT"}, {"sub": "u-8812", "email": "jane@corp.fr", "exp": 1700000000})
# jwt.io's example token, printed in countless tutorials: signed with "your-256-bit-secret".
JWT_IO_EXAMPLE = jwt(
    {"alg": "HS256", "typ": "JWT"},
    {"sub": "1234567890", "name": "John Doe", "iat": 1516239022},
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
)
INVISIBLES = {
    "zero width space": "\u200b",
    "zero width non-joiner": "\u200c",
    "zero width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
}

# (text with a planted secret, the text as it must come out).
PLANTED: dict[str, tuple[str, str]] = {
    "aws credentials file": (
        f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\nregion = eu-west-3",
        "[default]\naws_access_key_id = <API_KEY>\naws_secret_access_key = <API_KEY>\nregion = eu-west-3",
    ),
    "aws sdk object": (
        f'new S3({{ accessKeyId: "ASIAY3K5M7P9R1T3V5X7", secretAccessKey: "{AWS_SECRET}" }})',
        'new S3({ accessKeyId: "<API_KEY>", secretAccessKey: "<API_KEY>" })',
    ),
    "aws secret before its id": (
        f"secret {AWS_SECRET} goes with id {AWS_KEY_ID}",
        "secret <API_KEY> goes with id <API_KEY>",
    ),
    "aws secret by its variable name": (
        f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
        "export AWS_SECRET_ACCESS_KEY=<API_KEY>",
    ),
    "aws id beside a git sha": (
        f"commit {GIT_SHA} added {AWS_KEY_ID} by mistake",
        f"commit {GIT_SHA} added <API_KEY> by mistake",
    ),
    "stripe live secret": ('stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', 'stripe.api_key = "<API_KEY>"'),
    "stripe live restricted": (
        "STRIPE_KEY=rk_live_51H8xKpLm2Qr4Tz6Wb8Yc0Df2Gh4Jk6Ln8Pq0Rs2Tu4Vw6Xy8Za0Bc2De4Fg6Hi8",
        "STRIPE_KEY=<API_KEY>",
    ),
    "stripe test secret": ("key: sk_test_51H8xKpLm2Qr4Tz6Wb8Yc0Df2Gh", "key: <API_KEY>"),
    "stripe test restricted": ("key: rk_test_51H8xKpLm2Qr4Tz6Wb8Yc0Df2Gh", "key: <API_KEY>"),
    "jwt bearer": (
        f"curl -H 'Authorization: Bearer {USER_JWT}' https://api",
        "curl -H 'Authorization: Bearer <JWT>' https://api",
    ),
    "jwt unpadded header without typ": (
        "token=" + jwt({"alg": "RS256", "kid": "k1"}, {"sub": "42"}) + "&next=1",
        "token=<JWT>&next=1",
    ),
    **{
        f"openai key split by a {name}": (
            f"my key {OPENAI_KEY[:20]}{char}{OPENAI_KEY[20:]} thanks",
            "my key <API_KEY> thanks",
        )
        for name, char in INVISIBLES.items()
    },
    "openai key split twice": (
        f"{OPENAI_KEY[:9]}\u200b{OPENAI_KEY[9:30]}\u00ad{OPENAI_KEY[30:]}\n\u200bnext line",
        "<API_KEY>\n\u200bnext line",
    ),
    "french mobile spaced": ("Appelez-moi au 06 12 34 56 78 demain.", "Appelez-moi au <PHONE> demain."),
    "french mobile dotted": ("Tél. : 06.12.34.56.78", "Tél. : <PHONE>"),
    "french mobile hyphenated": ("tel 07-81-26-94-33.", "tel <PHONE>."),
    "french landline": ("Standard : 01 42 68 53 00", "Standard : <PHONE>"),
    "french international": ("Call +33 6 12 34 56 78 now", "Call <PHONE> now"),
    "french international trunk": ("Call +33 (0)6 12 34 56 78 now", "Call <PHONE> now"),
    "french international dotted": ("Call +33 6.12.34.56.78 now", "Call <PHONE> now"),
    "visa spaced": ("Card: 4539 1488 0343 6467, exp 12/27", "Card: <CREDIT_CARD>, exp 12/27"),
    "mastercard hyphenated": ("5221-8766-3104-5528", "<CREDIT_CARD>"),
    "mastercard 2-series contiguous": ('"number": "2221004893271156"', '"number": "<CREDIT_CARD>"'),
    "amex grouped 4-6-5": ("amex 3782 916455 10032 ok", "amex <CREDIT_CARD> ok"),
    "discover contiguous": ("cc=6011098374620118;", "cc=<CREDIT_CARD>;"),
    "jcb spaced": ("JCB 3566 0071 4829 3017", "JCB <CREDIT_CARD>"),
    "public ipv4": ("My server 54.210.33.17 is down", "My server <IP_ADDRESS> is down"),
    "public ipv4 in a url": ("curl http://13.250.2.198:8080/health", "curl http://<IP_ADDRESS>:8080/health"),
    "public ipv4 after ssh user": ("ssh ubuntu@35.180.12.99", "ssh ubuntu@<IP_ADDRESS>"),
}

# Text that looks like the new kinds but holds no secret: it must come out unchanged.
LOOK_ALIKES: dict[str, str] = {
    "git sha beside documentation key id": f"commit {GIT_SHA} documents AKIAIOSFODNN7EXAMPLE",
    "aws documentation pair": (
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    ),
    "base64 beside the word AKIA": "Key ids start with AKIA. sha1 base64: L2Zvby9iYXIvYmF6L3F1eC9xdXV4L2NvcmdlMTIz",
    "hex digest beside a key id": f"{AWS_KEY_ID.lower()} and {GIT_SHA.upper()}",
    "stripe publishable live key": 'Stripe("pk_live_51H8xKpLm2Qr4Tz6Wb8Yc0Df2Gh4Jk6Ln8Pq0Rs2Tu4Vw6Xy8Za0Bc2De4")',
    "stripe publishable test key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
    "stripe placeholder": 'stripe.api_key = "sk_test_your_api_key_here"',
    "stripe masked": "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
    "stripe documentation test key": 'stripe.api_key = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"',
    "jwt.io example": f"Authorization: Bearer {JWT_IO_EXAMPLE}",
    "jwt-shaped but not base64 json": "eyJhbGciOiJIUzI1NiJ9xx.eyJzdWIiOiIxMjM0NTY3ODkwIn0x.aBcDeFgHiJkLmNoPqRsTuV",
    "jwt-shaped header without alg": jwt({"typ": "JWT"}, {"sub": "42"}),
    "jwt header alone": "header eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 only",
    "soft hyphen in a word": "hy\u00adphen\u00adation and co\u200bop",
    "persian zero width non-joiner": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "emoji zero width joiner": "\U0001f469\u200d\U0001f4bb",
    "placeholder key split": "sk-YOUR\u200b_API_KEY_HERE",
    "lottery draw": "Tirage du loto : 01 02 03 04 05",
    "lottery draw unevenly spaced": "Numéros gagnants : 03 17 22 38 45",
    "longer number list": "01 02 03 04 05 06 07 08 09 10",
    "counting by fives": "row 05 10 15 20 25",
    "dotted list": "01.02.03.04.05",
    "french number in a longer run": "ref 12 06 12 34 56 78",
    "order number failing luhn": "Order #4539 1488 0343 6468 shipped",
    "contiguous order number failing luhn": "order_id=4539148803436468",
    "luhn-valid with no card prefix": "invoice 0000 0000 0000 0000 and 1234 5678 9012 3452",
    "stripe test card": '"number": "4242424242424242", "cvc": "123"',
    "braintree test card": "4111 1111 1111 1111",
    "uuid": "id 550e8400-e29b-41d4-a716-446655440000",
    "timestamp in milliseconds": "ts=1678901234567",
    "snowflake id": "message 1081234567890123456",
    "sec filing path": "edgar/data/1640129/000114420415043739/xslF345X02",
    "placeholder ipv4": "['1.2.3.4', '10.0.0.1']",
    "version string": "contentVersion: 1.0.0.0 and FBF-3.6.0.0-32d71583f.zip and v1.22.3.4",
    "version keyword": "Upgrade to version 2.14.1.5 (build 3.1.4.15)",
    "five-part version": "1.2.3.4.5",
    "private and loopback ipv4": "127.0.0.1:8000, 192.168.1.10, 10.0.0.5, 172.16.254.1, 169.254.1.1",
    "documentation ipv4": "203.0.113.7, 198.51.100.2, 192.0.2.1",
    "public resolvers": "ping 8.8.8.8; nameserver 1.1.1.1; 9.9.9.9; 208.67.222.222",
    "netmask and any address": "255.255.255.0 on 0.0.0.0",
    "network address": "allow 13.250.0.0/16",
    "snmp oid": "1.3.6.1.4.1.9.9",
    "leading zeros": "01.02.03.04",
}


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
