"""Planted secrets of every kind the secrets stage redacts (curation/clean/secrets.py), each with
the text as it must come out, and look-alikes that hold none and must come out unchanged: shared
by the stage's unit tests and the run test that greps every file a run leaves."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

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


def planted_secret_strings(text: str, expected: str) -> list[str]:
    """The secrets in a PLANTED text: what stands where the expected text has a <PLACEHOLDER>."""
    literals = re.split(r"<[A-Z_]+>", expected)
    match = re.fullmatch("(.+?)".join(map(re.escape, literals)), text, re.S)
    assert match is not None, (text, expected)
    return list(match.groups())
