"""Redact credentials and personal contact data from every turn: the "secrets" stage.

Users paste resumes, signatures, config files and stack traces into ChatGPT, so ShareGPT text holds
real e-mail addresses, phone numbers and, now and then, API keys. This stage replaces them with
the placeholders <API_KEY>, <EMAIL> and <PHONE> and never drops a conversation.

Precision matters as much as recall: the text is full of dates, versions, IP addresses, numeric
tables, property ids and code. Each pattern below therefore demands the shape the real thing has
(fixed prefixes, separators, valid numbering-plan digits) and rejects look-alikes explicitly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

from schemas.config import SecretsConfig
from schemas.conversation import Conversation
from schemas.ledger import StageResult

API_KEY_PLACEHOLDER = "<API_KEY>"
EMAIL_PLACEHOLDER = "<EMAIL>"
PHONE_PLACEHOLDER = "<PHONE>"

# --- API keys -------------------------------------------------------------------------------
# Prefixes as the issuers document them. Bodies are random, so a real key mixes character
# classes; placeholders such as "sk-YOUR_KEY_HERE" or "xoxp-your-token-here" (seen in the real
# sample) do not, and the validators below let them through unredacted.


def _mixes_case_and_digits(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.islower() for c in token) and any(c.isupper() for c in token)


def _mixes_case(token: str) -> bool:
    return any(c.islower() for c in token) and any(c.isupper() for c in token)


def _has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


def _not_aws_documentation_example(token: str) -> bool:
    # AWS's documentation key ids end in "EXAMPLE" (AKIAIOSFODNN7EXAMPLE): reserved examples, like
    # example.com, not anybody's credential.
    return not token.endswith("EXAMPLE")


# (literals one of which every match contains, pattern, validator of the matched token). The
# literal test is a fast C scan that lets almost every text skip the regex. A token failing its
# validator stays as it is.
_API_KEY_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], Callable[[str], bool]], ...] = (
    # OpenAI: legacy "sk-" + 48 base62; project, service-account and admin keys carry a second
    # prefix and may contain "-" and "_".
    (("sk-",), re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), _mixes_case_and_digits),
    # AWS access key ids: "AKIA" (long-term) or "ASIA" (temporary) + 16 upper-case alphanumerics.
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), _not_aws_documentation_example),
    # GitHub: classic tokens gh[pousr]_ + 36 base62; fine-grained github_pat_ + 82 chars.
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), _mixes_case),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"), _mixes_case_and_digits),
    # Google API keys: "AIza" + 35 url-safe base64 characters.
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), _mixes_case),
    # Slack tokens: xoxb/xoxa/xoxp/xoxr/xoxs- followed by numeric ids and a secret.
    (
        ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"),
        re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
        _has_digit,
    ),
    # Hugging Face user access tokens: "hf_" + 34 letters.
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), _mixes_case),
)

# PEM private keys. The body is replaced and the BEGIN/END lines are kept, so the text still
# reads as "a key went here". A block whose body holds no real base64 ("...", "<your key>") is a
# placeholder and stays.
_PEM_PRIVATE_KEY = re.compile(
    r"(?P<begin>-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY)-----)"
    r"(?P<body>[\s\S]*?)"
    r"(?P<end>-----END (?P=label)-----)"
)
# A paste cut short before its END line: the BEGIN line and the base64 lines that follow it.
_PEM_PRIVATE_KEY_TRUNCATED = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)"
    r"(?P<body>\s*[A-Za-z0-9+/=]{16,}(?:\s+[A-Za-z0-9+/=]{16,})*)"
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{40,}")

# --- E-mail addresses -----------------------------------------------------------------------
# Local part starting with an alphanumeric (so "user:...@host" in a connection string is no
# address), dot-separated domain labels, an alphabetic top-level domain.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])"  # start only where a local part can start: one try per token, not per char
    r"[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    # "git@github.com:org/repo.git" and "user@host:/path" are SSH/scp logins, not mailboxes.
    r"(?![A-Za-z0-9-]|:[\w~/.])"
)
# Reserved for documentation and testing (RFC 2606, RFC 6761): no person receives mail there.
_RESERVED_SECOND_LEVEL = ("example.com", "example.org", "example.net")
_RESERVED_TOP_LEVEL = ("example", "test", "invalid", "localhost")
# Image file extensions are no top-level domains: "icon@2x.png" is a high-density asset name.
_FILE_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "svg", "webp")


def is_reserved_example_domain(domain: str) -> bool:
    """Whether `domain` is a documentation/testing name (RFC 2606/6761) that no person owns."""
    name = domain.lower().rstrip(".")
    if name == "localhost" or name.rsplit(".", 1)[-1] in _RESERVED_TOP_LEVEL:
        return True
    return any(name == reserved or name.endswith("." + reserved) for reserved in _RESERVED_SECOND_LEVEL)


# --- Phone numbers --------------------------------------------------------------------------
# International (E.164, ITU-T): "+", a country code not starting with 0, digit groups separated by
# single spaces, dots or hyphens, optionally a "(0)" trunk prefix or a parenthesised area code.
# E.164 caps a number at 15 digits. Fewer than 8 would take the "+1226" and "+6144" merchant
# codes of a bank statement in the real sample; only a few tiny island plans are that short.
_INTERNATIONAL_PHONE = re.compile(
    r"(?<![\w+)\]])"  # not "x+1234..." (arithmetic) or "1e+10", and no nested "+"
    r"\+[1-9]\d{0,2}"
    r"(?:[ .-]?\(\d{1,4}\))?"
    # Groups: one separator between two of them at most, so a long digit run splits only one
    # way and a failed match cannot backtrack through every partition of it.
    r"[ .-]?\d+(?:[ .-]\d+){0,5}"
    r"(?![\w-]|[.,]\d)"
)
_E164_MIN_DIGITS, _E164_MAX_DIGITS = 8, 15
# North American Numbering Plan: area code and exchange both start with 2-9, then 4 digits.
# Separators are required between the groups (a bare 10-digit run is as likely an id or a
# timestamp), and a space alone does not separate area code and exchange: "250 300 1200" is as
# likely a row of a numeric table. Accepted: (555) 234-5678, (516)-974-4700, 555-234-5678,
# 555.234.5678, 1-800-234-5678.
_NANP_PHONE = re.compile(
    r"(?<![\w+.-])"  # not the tail of a longer id such as a property number 11-21-212-046-0000
    r"(?:1[ .-])?"
    r"(?:\(\s*[2-9]\d{2}\s*\)[ .-]?|[2-9]\d{2}[.-])"
    r"[2-9]\d{2}[ .-]\d{4}"
    r"(?![\w-]|\.\d)"  # nor the head of a longer one, nor an IPv4-like dotted run
)


# Cheap necessary conditions, tested first: the full patterns start with lookbehinds that make
# the regex engine try every position, about 3x slower over the real sample.
_INTERNATIONAL_PHONE_HINT = re.compile(r"\+\d")
_NANP_PHONE_HINT = re.compile(r"\d[ .-]\d{4}")


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


# --- Redaction ------------------------------------------------------------------------------


def _redact_api_keys(text: str) -> tuple[str, int]:
    redacted = 0

    def pem_block(m: re.Match[str]) -> str:
        nonlocal redacted
        if not _BASE64_RUN.search(m.group("body")):
            return m.group(0)
        redacted += 1
        end = m.groupdict().get("end")
        return f"{m.group('begin')}\n{API_KEY_PLACEHOLDER}" + (f"\n{end}" if end else "")

    if "PRIVATE KEY-----" in text:
        text = _PEM_PRIVATE_KEY.sub(pem_block, text)
        text = _PEM_PRIVATE_KEY_TRUNCATED.sub(pem_block, text)
    for literals, pattern, looks_real in _API_KEY_PATTERNS:
        if not any(literal in text for literal in literals):
            continue

        def token(m: re.Match[str], looks_real: Callable[[str], bool] = looks_real) -> str:
            nonlocal redacted
            if not looks_real(m.group(0)):
                return m.group(0)
            redacted += 1
            return API_KEY_PLACEHOLDER

        text = pattern.sub(token, text)
    return text, redacted


def _redact_emails(text: str) -> tuple[str, int]:
    if "@" not in text:
        return text, 0
    redacted = 0

    def address(m: re.Match[str]) -> str:
        nonlocal redacted
        domain = m.group("domain")
        if is_reserved_example_domain(domain) or domain.rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS:
            return m.group(0)
        redacted += 1
        return EMAIL_PLACEHOLDER

    return _EMAIL.sub(address, text), redacted


def _redact_phone_numbers(text: str) -> tuple[str, int]:
    redacted = 0

    def international(m: re.Match[str]) -> str:
        nonlocal redacted
        if not _E164_MIN_DIGITS <= _digit_count(m.group(0)) <= _E164_MAX_DIGITS:
            return m.group(0)
        redacted += 1
        return PHONE_PLACEHOLDER

    def north_american(m: re.Match[str]) -> str:
        nonlocal redacted
        redacted += 1
        return PHONE_PLACEHOLDER

    if _INTERNATIONAL_PHONE_HINT.search(text):
        text = _INTERNATIONAL_PHONE.sub(international, text)
    if _NANP_PHONE_HINT.search(text):
        text = _NANP_PHONE.sub(north_american, text)
    return text, redacted


def redact_text(text: str, *, config: SecretsConfig) -> tuple[str, Counter[str]]:
    """`text` with secrets replaced by placeholders, and how many of each kind were replaced.

    Keys go first, so the phone pattern never sees the digits inside a key.
    """
    counts: Counter[str] = Counter()
    if config.redact_api_keys:
        text, counts["api_keys_redacted"] = _redact_api_keys(text)
    if config.redact_emails:
        text, counts["emails_redacted"] = _redact_emails(text)
    if config.redact_phone_numbers:
        text, counts["phone_numbers_redacted"] = _redact_phone_numbers(text)
    return text, +counts  # unary + drops the zero counts


def redact_secrets(convs: Iterable[Conversation], *, config: SecretsConfig) -> StageResult:
    """Every conversation, with API keys, e-mail addresses and phone numbers in any role's turns
    replaced by <API_KEY>, <EMAIL>, <PHONE>. Never drops.

    `changed` counts replaced occurrences per kind ("api_keys_redacted", "emails_redacted",
    "phone_numbers_redacted") and "conversations_redacted".
    """
    kept: list[Conversation] = []
    changed: Counter[str] = Counter()
    for conv in convs:
        conv_counts: Counter[str] = Counter()
        new_turns = []
        for turn in conv.turns:
            content, counts = redact_text(turn.content, config=config)
            conv_counts += counts
            new_turns.append(turn.model_copy(update={"content": content}) if counts else turn)
        if conv_counts:
            changed += conv_counts
            changed["conversations_redacted"] += 1
            conv = conv.model_copy(update={"turns": tuple(new_turns)})
        kept.append(conv)
    return StageResult(kept=kept, dropped=[], changed=dict(changed))
