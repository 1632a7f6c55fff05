"""Redact credentials and personal data from every turn and the title: the "secrets" stage.

Users paste resumes, signatures, config files and stack traces into ChatGPT, so ShareGPT text holds
real e-mail addresses, phone numbers and, now and then, API keys. This stage replaces them with
placeholders that name what they replaced (<API_KEY>, <JWT>, <EMAIL>, <PHONE>, <CREDIT_CARD>,
<IP_ADDRESS>) and never drops a conversation.

Precision matters as much as recall: the text is full of dates, versions, IP addresses, numeric
tables, property ids and code. Each pattern below therefore demands the shape the real thing has
(fixed prefixes, separators, valid numbering-plan digits, check digits) and rejects look-alikes
explicitly. Every pattern runs in linear time: no nested quantifiers over overlapping classes.
The newer patterns consume their first character before looking behind it ("[0-9](?<![.][0-9])",
not "(?<![.])[0-9]"): the regex engine then skips to candidate characters in C instead of
trying the lookbehind at every position, several times faster over the real sample.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import pairwise

from schemas.config import SecretsConfig
from schemas.conversation import Conversation
from schemas.ledger import StageResult

API_KEY_PLACEHOLDER = "<API_KEY>"
JWT_PLACEHOLDER = "<JWT>"
EMAIL_PLACEHOLDER = "<EMAIL>"
PHONE_PLACEHOLDER = "<PHONE>"
CREDIT_CARD_PLACEHOLDER = "<CREDIT_CARD>"
IP_ADDRESS_PLACEHOLDER = "<IP_ADDRESS>"

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


# The test-mode keys Stripe's own API reference prints in every example: public, like example.com.
_STRIPE_DOCUMENTATION_KEYS = frozenset({"sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_BQokikJOvBiI2HlWgH4olfQ2"})


def _real_stripe_key(token: str) -> bool:
    return _mixes_case_and_digits(token) and token not in _STRIPE_DOCUMENTATION_KEYS


_AWS_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")

# (literals one of which every match contains, pattern, validator of the matched token). The
# literal test is a fast C scan that lets almost every text skip the regex. A token failing its
# validator stays as it is.
_API_KEY_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], Callable[[str], bool]], ...] = (
    # OpenAI: legacy "sk-" + 48 base62; project, service-account and admin keys carry a second
    # prefix and may contain "-" and "_".
    (("sk-",), re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), _mixes_case_and_digits),
    # AWS access key ids: "AKIA" (long-term) or "ASIA" (temporary) + 16 upper-case alphanumerics.
    (("AKIA", "ASIA"), _AWS_ACCESS_KEY_ID, _not_aws_documentation_example),
    # Stripe secret (sk_) and restricted (rk_) keys, live and test: a test key reads and writes the
    # account's test data, so it is a secret too. Publishable keys (pk_) are public by design (every
    # checkout page embeds one) and stay.
    (
        ("sk_live_", "rk_live_", "sk_test_", "rk_test_"),
        re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{20,}\b"),
        _real_stripe_key,
    ),
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

# AWS secret access keys: 40 base64 characters with no prefix of their own, so alone they cannot
# be told from a hash or a base64 blob. One is taken as a secret only beside what identifies it: a
# real access key id within _AWS_PAIR_WINDOW characters (the two are pasted together, as in
# ~/.aws/credentials), or a name such as aws_secret_access_key / SecretAccessKey just before it.
# ("=" may end a base64 run, as padding, but not start one: "KEY=<secret>" is an assignment.)
_AWS_SECRET_ACCESS_KEY = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_AFTER_ITS_NAME = re.compile(
    r"(?i:secret_?access_?key|aws_?secret_?key)[\"']?\s*[:=]\s*[\"']?"
    r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_AWS_PAIR_WINDOW = 200


def _real_aws_secret_key(token: str) -> bool:
    # A 40-character git SHA has no upper case; AWS's documentation secret ends in "EXAMPLEKEY".
    return _mixes_case_and_digits(token) and not token.endswith("EXAMPLEKEY")


# JSON Web Tokens: base64url JSON header "." payload "." signature. The header starts with '{"',
# which base64 spells "eyJ", the payload with "{" ("ey"). The header must decode to a JOSE header
# (a JSON object naming its "alg") and the payload to a JSON object, so JWT-shaped ids and
# truncated pastes stay.
_JWT = re.compile(r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])")
# jwt.io's example token (signed with "your-256-bit-secret") is in countless tutorials: it is
# public, and recognised by its payload whatever algorithm the copy was re-signed with.
_JWT_IO_EXAMPLE_PAYLOAD = {"sub": "1234567890", "name": "John Doe", "iat": 1516239022}


def _base64url_json(segment: str) -> object:
    """The JSON value a base64url segment encodes, or None if it encodes none."""
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _real_jwt(token: str) -> bool:
    header, payload, _signature = token.split(".")
    decoded_header, decoded_payload = _base64url_json(header), _base64url_json(payload)
    return (
        isinstance(decoded_header, dict)
        and isinstance(decoded_header.get("alg"), str)
        and isinstance(decoded_payload, dict)
        and decoded_payload != _JWT_IO_EXAMPLE_PAYLOAD
    )


# Invisible characters a chat UI or a copy from a web page can leave inside a token: a key split by
# one matches no pattern. They also belong in ordinary text (the zero-width non-joiner in Persian
# words, the joiner in emoji, soft hyphens in long words), so they are never removed wholesale: an
# ASCII token with some inside is rejoined, and replaced by its rejoined form only if that holds a
# credential.
_INVISIBLE_CHARACTERS = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_TOKEN_WITH_INVISIBLES = re.compile(
    rf"[A-Za-z0-9_./+=-](?<![A-Za-z0-9_./+=-].)[A-Za-z0-9_./+=-]*(?:[{_INVISIBLE_CHARACTERS}]+[A-Za-z0-9_./+=-]+)+"
)
_WITHOUT_INVISIBLES = str.maketrans("", "", _INVISIBLE_CHARACTERS)

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
# France, national format (ARCEP plan): "0", a digit 1-9 (01-05 regions, 06/07 mobiles, 08, 09),
# then four pairs, one separator throughout: 06 12 34 56 78, 06.12.34.56.78, 01-42-68-53-00.
# The +33 forms are international numbers above. Not within a longer run of digit groups.
_FRENCH_PHONE = re.compile(
    r"0(?<![\w+.,/-]0)(?<![0-9][ .-]0)"
    r"[1-9](?P<sep>[ .-])[0-9]{2}(?:(?P=sep)[0-9]{2}){3}"
    r"(?![\w-]|[ .,]\d)"
)
# Lottery numbers are printed in the same pairs, sorted: "01 02 03 04 05", "03 17 22 38 45". Pairs
# rising strictly and all within a draw's range (Loto 1-49, EuroMillions 1-50) are taken as a draw
# or a counting list; a random subscriber number has that shape about once in 650.
_LOTTERY_MAX_NUMBER = 50


def _looks_like_a_draw(pairs: list[int]) -> bool:
    return pairs[-1] <= _LOTTERY_MAX_NUMBER and all(a < b for a, b in pairwise(pairs))


# Cheap necessary conditions, tested first: the full patterns start with lookbehinds that make
# the regex engine try every position, about 3x slower over the real sample.
_INTERNATIONAL_PHONE_HINT = re.compile(r"\+\d")
_NANP_PHONE_HINT = re.compile(r"\d[ .-]\d{4}")


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


# --- Credit cards ---------------------------------------------------------------------------
# 13-19 digits, contiguous or grouped as cards print them (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners
# 4-6-4) with one separator throughout. A candidate must pass the Luhn check that every card
# number carries AND start with an issuer's prefix at that issuer's length: an order number passes
# Luhn one time in ten, and the prefix check throws out most of those (ids and timestamps starting
# with 0 or 1, for a start).
_CARD_NUMBER = re.compile(
    r"[0-9](?<![\w./+-][0-9])(?<![0-9] [0-9])"
    r"(?:[0-9]{3}(?P<sep>[ -])[0-9]{4}(?P=sep)[0-9]{4}(?P=sep)[0-9]{4}(?:(?P=sep)[0-9]{3})?"
    r"|[0-9]{3}(?P<sep2>[ -])[0-9]{6}(?P=sep2)[0-9]{4,5}"
    r"|[0-9]{12,18})"
    r"(?![\w-]|[.,]\d| \d{4}(?!\d))"
)
# The test numbers payment providers publish for integration tests (Stripe, Braintree/PayPal):
# code answers are full of them and they charge nobody.
_PUBLISHED_TEST_CARDS = frozenset(
    {
        "4242424242424242",
        "4000056655665556",
        "4111111111111111",
        "4012888888881881",
        "4222222222222",
        "5555555555554444",
        "5200828282828210",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "36227206271667",
        "3566002020360505",
        "6200000000000005",
    }
)


def _passes_luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _has_issuer_prefix(digits: str) -> bool:
    """Whether `digits` has the prefix (published IIN range) and a length of one card network:
    Visa, Mastercard, American Express, Discover, JCB, Diners Club or UnionPay."""
    length, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return length in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return length == 16
    if two in (34, 37):  # American Express
        return length == 15
    if four == 6011 or two == 65 or 644 <= three <= 649 or 3528 <= four <= 3589 or two == 62:
        return 16 <= length <= 19  # Discover, JCB, UnionPay
    if 300 <= three <= 305 or two in (36, 38, 39):  # Diners Club
        return 14 <= length <= 19
    return False


# --- IP addresses ---------------------------------------------------------------------------
# Dotted-quad IPv4 (ipaddress rejects octets over 255 and leading zeros), not inside a longer
# dotted run (1.2.3.4.5 is a version, 1.3.6.1.4.1 an SNMP OID). Only public unicast host
# addresses identify anybody. What stays: private, loopback, link-local, shared (CGNAT),
# documentation (RFC 5737) and reserved ranges (what ipaddress calls not global); multicast;
# x.y.z.0 and x.y.z.255, network and broadcast addresses, which is also how four-part versions
# end ("1.0.0.0"); and a few public addresses that identify no user: the well-known DNS
# resolvers and the conventional placeholder 1.2.3.4.
_IPV4 = re.compile(r"[0-9](?<![\w.-][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?!\.?\w)")
_PUBLIC_NON_PERSONAL_IPV4 = frozenset(
    {
        "1.1.1.1",  # Cloudflare DNS
        "1.0.0.1",
        "8.8.8.8",  # Google DNS
        "8.8.4.4",
        "9.9.9.9",  # Quad9
        "208.67.222.222",  # OpenDNS
        "208.67.220.220",
        "1.2.3.4",  # the placeholder address of countless examples
    }
)
# "version 2.14.1.5", "build 3.1.4.15": a version number, whatever it looks like.
_VERSION_WORD_BEFORE = re.compile(r"(?i)\b(?:version|ver|release|build|firmware)\W{0,3}$")


def _is_personal_ipv4(address_text: str, text_before: str) -> bool:
    try:
        address = ipaddress.IPv4Address(address_text)
    except ValueError:  # 999.1.2.3, 01.02.03.04
        return False
    return (
        address.is_global
        and not address.is_multicast
        and address.packed[-1] not in (0, 255)
        and address_text not in _PUBLIC_NON_PERSONAL_IPV4
        and not _VERSION_WORD_BEFORE.search(text_before)
    )


# --- Redaction ------------------------------------------------------------------------------


def _redact_aws_secret_keys(text: str) -> tuple[str, int]:
    candidates = {m.span("secret") for m in _AWS_SECRET_AFTER_ITS_NAME.finditer(text)}
    for key_id in _AWS_ACCESS_KEY_ID.finditer(text):
        if not _not_aws_documentation_example(key_id.group(0)):
            continue
        # Bounds, not a slice, so the lookarounds see the characters around a token in the window
        # (a slice would cut a longer run down to 40). `last_start` + 40 + 1: room for the last
        # token that may start in the window and the character after it.
        last_start = key_id.end() + _AWS_PAIR_WINDOW
        window = _AWS_SECRET_ACCESS_KEY.finditer(text, max(0, key_id.start() - _AWS_PAIR_WINDOW), last_start + 41)
        candidates.update(m.span() for m in window if m.start() <= last_start)
    pieces, done, redacted = [], 0, 0
    for start, end in sorted(candidates):
        if _real_aws_secret_key(text[start:end]):
            pieces += [text[done:start], API_KEY_PLACEHOLDER]
            done, redacted = end, redacted + 1
    return "".join([*pieces, text[done:]]), redacted


def _redact_jwts(text: str) -> tuple[str, int]:
    redacted = 0

    def token(m: re.Match[str]) -> str:
        nonlocal redacted
        if not _real_jwt(m.group(0)):
            return m.group(0)
        redacted += 1
        return JWT_PLACEHOLDER

    return _JWT.sub(token, text), redacted


def _redact_credentials_in_place(text: str) -> tuple[str, Counter[str]]:
    """`text` with private keys, API keys (AWS secrets before the ids that locate them) and JWTs
    replaced where they stand, untouched by invisible characters."""
    counts: Counter[str] = Counter()

    def pem_block(m: re.Match[str]) -> str:
        if not _BASE64_RUN.search(m.group("body")):
            return m.group(0)
        counts["api_keys_redacted"] += 1
        end = m.groupdict().get("end")
        return f"{m.group('begin')}\n{API_KEY_PLACEHOLDER}" + (f"\n{end}" if end else "")

    if "PRIVATE KEY-----" in text:
        text = _PEM_PRIVATE_KEY.sub(pem_block, text)
        text = _PEM_PRIVATE_KEY_TRUNCATED.sub(pem_block, text)
    if "AKIA" in text or "ASIA" in text or "ecret" in text or "ECRET" in text:
        text, counts["api_keys_redacted"] = _redact_aws_secret_keys(text)
    for literals, pattern, looks_real in _API_KEY_PATTERNS:
        if not any(literal in text for literal in literals):
            continue

        def token(m: re.Match[str], looks_real: Callable[[str], bool] = looks_real) -> str:
            if not looks_real(m.group(0)):
                return m.group(0)
            counts["api_keys_redacted"] += 1
            return API_KEY_PLACEHOLDER

        text = pattern.sub(token, text)
    if "eyJ" in text:
        text, counts["jwts_redacted"] = _redact_jwts(text)
    return text, counts


def _redact_credentials(text: str) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    if any(char in text for char in _INVISIBLE_CHARACTERS):

        def rejoined(m: re.Match[str]) -> str:
            nonlocal counts
            redacted, found = _redact_credentials_in_place(m.group(0).translate(_WITHOUT_INVISIBLES))
            if not +found:
                return m.group(0)
            counts += found
            return redacted

        text = _TOKEN_WITH_INVISIBLES.sub(rejoined, text)
    text, in_place = _redact_credentials_in_place(text)
    return text, counts + in_place


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


def _redact_credit_cards(text: str) -> tuple[str, int]:
    redacted = 0

    def number(m: re.Match[str]) -> str:
        nonlocal redacted
        digits = m.group(0).replace(" ", "").replace("-", "")
        if digits in _PUBLISHED_TEST_CARDS or not (_passes_luhn(digits) and _has_issuer_prefix(digits)):
            return m.group(0)
        redacted += 1
        return CREDIT_CARD_PLACEHOLDER

    return _CARD_NUMBER.sub(number, text), redacted


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

    def french(m: re.Match[str]) -> str:
        nonlocal redacted
        if _looks_like_a_draw([int(pair) for pair in re.findall(r"\d\d", m.group(0))]):
            return m.group(0)
        redacted += 1
        return PHONE_PLACEHOLDER

    if _INTERNATIONAL_PHONE_HINT.search(text):
        text = _INTERNATIONAL_PHONE.sub(international, text)
    if _NANP_PHONE_HINT.search(text):
        text = _NANP_PHONE.sub(north_american, text)
    text = _FRENCH_PHONE.sub(french, text)
    return text, redacted


def _redact_ip_addresses(text: str) -> tuple[str, int]:
    redacted = 0

    def address(m: re.Match[str]) -> str:
        nonlocal redacted
        if not _is_personal_ipv4(m.group(0), text[max(0, m.start() - 12) : m.start()]):
            return m.group(0)
        redacted += 1
        return IP_ADDRESS_PLACEHOLDER

    return _IPV4.sub(address, text), redacted


def redact_text(text: str, *, config: SecretsConfig) -> tuple[str, Counter[str]]:
    """`text` with secrets replaced by placeholders, and how many of each kind were replaced.

    Credentials go first, so no later pattern sees the digits inside a key; phone numbers, the
    loosest shapes, go last, so they neither take a card's digit groups nor see an address beside
    them as the head of a longer run of numbers.
    """
    counts: Counter[str] = Counter()
    if config.redact_api_keys:
        text, credentials = _redact_credentials(text)
        counts += credentials
    if config.redact_emails:
        text, counts["emails_redacted"] = _redact_emails(text)
    if config.redact_credit_cards:
        text, counts["credit_cards_redacted"] = _redact_credit_cards(text)
    if config.redact_ip_addresses:
        text, counts["ip_addresses_redacted"] = _redact_ip_addresses(text)
    if config.redact_phone_numbers:
        text, counts["phone_numbers_redacted"] = _redact_phone_numbers(text)
    return text, +counts  # unary + drops the zero counts


def redact_secrets(convs: Iterable[Conversation], *, config: SecretsConfig) -> StageResult:
    """Every conversation, with the secrets in its title and in any role's turns replaced by
    placeholders (see redact_text). Never drops.

    `changed` counts replaced occurrences per kind ("api_keys_redacted", "jwts_redacted",
    "emails_redacted", "credit_cards_redacted", "phone_numbers_redacted", "ip_addresses_redacted"),
    "titles_redacted" and "conversations_redacted".
    """
    kept: list[Conversation] = []
    changed: Counter[str] = Counter()
    for conv in convs:
        update: dict[str, object] = {}
        # The title is shown beside the turns wherever the conversation is read, and users name
        # conversations after what they pasted ("Resume of jane@...").
        conv_counts: Counter[str] = Counter()
        if conv.title is not None:
            title, conv_counts = redact_text(conv.title, config=config)
            if conv_counts:
                update["title"] = title
                conv_counts["titles_redacted"] = 1
        new_turns = []
        for turn in conv.turns:
            content, counts = redact_text(turn.content, config=config)
            conv_counts += counts
            new_turns.append(turn.model_copy(update={"content": content}) if counts else turn)
        if conv_counts:
            changed += conv_counts
            changed["conversations_redacted"] += 1
            update["turns"] = tuple(new_turns)
            conv = conv.model_copy(update=update)
        kept.append(conv)
    return StageResult(kept=kept, dropped=[], changed=dict(changed))
