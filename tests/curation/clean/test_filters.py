"""Tests for curation/text.py, curation/clean/filters.py and curation/clean/secrets.py.

Small hand-built conversations pin each rule and every drop reason; the real ShareGPT sample
checks that every stage accounts for each conversation it is given.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from langdetect.detector_factory import DetectorFactory

from curation.clean.filters import (
    apply_blocked_phrases,
    keep_allowed_languages,
    keep_allowed_models,
    language_detector_factory,
    repair_shape,
)
from curation.clean.secrets import redact_secrets, redact_text
from curation.text import is_blank, normalize_text, words
from schemas.config import (
    FASTCHAT_BLOCKED_WORDS,
    REFUSAL_PHRASES,
    BlockedConfig,
    LanguageConfig,
    ModelConfig,
    SecretsConfig,
    ShapeConfig,
)
from schemas.conversation import Conversation, Role, Turn
from schemas.ledger import DROP_REASONS, StageResult
from tests.helpers.conversations import conversation, sharegpt_turns

# --- helpers --------------------------------------------------------------------------------


def sharegpt_conversations(records: list[dict[str, Any]]) -> list[Conversation]:
    """The real sample's records as Conversations (a local stand-in for curation/ingest/read.py)."""
    return [
        conversation(*sharegpt_turns(record["conversations"]), id=record["id"], input_file="sample", record_index=i)
        for i, record in enumerate(records)
    ]


def only_drop(result: StageResult) -> tuple[str, str]:
    """(reason, detail) of the single dropped conversation, checking nothing was kept."""
    assert result.kept == [], result.kept
    assert len(result.dropped) == 1, result.dropped
    return result.dropped[0].reason, result.dropped[0].detail


def only_kept(result: StageResult) -> Conversation:
    assert result.dropped == [], result.dropped
    assert len(result.kept) == 1
    return result.kept[0]


def roles(c: Conversation) -> list[str]:
    return [t.role for t in c.turns]


ANSWER = "Here is a detailed answer to your question."
QUESTION = "Could you explain how this works?"
SHAPE = ShapeConfig()

# --- text -----------------------------------------------------------------------------------


def test_normalize_text_folds_compatibility_forms_case_and_whitespace() -> None:
    assert normalize_text("ＡＢＣ１２３") == "abc123"  # full-width
    assert normalize_text("ﬁle") == "file"  # ligature
    assert normalize_text("Straße") == normalize_text("STRASSE") == "strasse"
    assert normalize_text("  a \t\n b\u00a0\u3000c  ") == "a b c"
    assert normalize_text("") == ""


@pytest.mark.parametrize("text", ["\u01f0", "ǰ", "ΐ", "ΣΑΣ ς", "İstanbul", "x\u200by", "Ⅻ ㎏ ①", "\u1e9e"])
def test_normalize_text_is_idempotent_and_stays_nfkc(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert unicodedata.is_normalized("NFKC", once)


def test_words_split_normalized_text_on_non_word_characters() -> None:
    assert words("Don't PANIC:  it's\t42!") == ["don", "t", "panic", "it", "s", "42"]
    assert words("ＨＥＬＬＯ, World") == ["hello", "world"]
    assert words("  ...  ") == []


def test_the_fast_paths_match_the_regex_definitions_on_every_code_point() -> None:
    """normalize_text splits on str.isspace and words() takes the ASCII pattern on ASCII text and
    skips the whitespace collapse: each must equal the plain regex definition (any run of \\s is one
    space, stripped; words are \\w+ of that), checked with every code point leading, inside a word,
    in a run and trailing, and on real-looking text."""
    space_run, word = re.compile(r"\s+"), re.compile(r"\w+")

    def by_regex(text: str) -> str:
        folded = text.lower() if text.isascii() else normalize_text_nfkc_casefold(text)
        return space_run.sub(" ", folded).strip()

    for code in range(0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue  # lone surrogates are no text
        text = f"{char}Ab{char}Cd {char}{char}"  # leading, inside a word, a run, trailing
        expected = by_regex(text)
        assert normalize_text(text) == expected, hex(code)
        assert words(text) == word.findall(expected), hex(code)
    sample = "Don't  PANIC:\u00a0it's\t42!\n\nＨＥＬＬＯ,  naïve café \u3000 Straße_x1 ①"
    assert words(sample) == word.findall(by_regex(sample)) == word.findall(normalize_text(sample))


def normalize_text_nfkc_casefold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def test_is_blank_counts_format_characters_as_blank() -> None:
    for blank in ("", "   \n\t", "\u200b", "\ufeff \u200d\u2060"):
        assert is_blank(blank), repr(blank)
    for visible in ("a", "\u200b.", " 0 "):
        assert not is_blank(visible), repr(visible)


# --- shape ----------------------------------------------------------------------------------


def test_shape_keeps_an_alternating_conversation_unchanged() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", QUESTION), ("assistant", ANSWER))
    result = repair_shape([c], config=SHAPE)
    assert only_kept(result) == c
    assert result.changed == {}


def test_shape_drops_no_turns_with_provenance() -> None:
    result = repair_shape([conversation(byte_offset=120, record_index=7)], config=SHAPE)
    assert only_drop(result)[0] == "no_turns"
    d = result.dropped[0]
    assert (d.conversation_id, d.stage, d.input_file, d.byte_offset, d.record_index) == (
        "c1",
        "shape",
        "in.json",
        120,
        7,
    )


@pytest.mark.parametrize("blank", ["", "  \n ", "\u200b"])
def test_shape_drops_a_blank_turn_in_the_middle(blank: str) -> None:
    c = conversation(("user", QUESTION), ("assistant", blank), ("user", QUESTION), ("assistant", ANSWER))
    reason, detail = only_drop(repair_shape([c], config=SHAPE))
    assert reason == "empty_turn"
    assert "turn 1" in detail


def test_shape_drops_a_blank_user_turn() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", " "), ("assistant", ANSWER))
    assert only_drop(repair_shape([c], config=SHAPE))[0] == "empty_turn"


@pytest.mark.parametrize("blank", ["", "\u200b"])
def test_shape_cuts_an_empty_final_round(blank: str) -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", "And then?"), ("assistant", blank))
    result = repair_shape([c], config=SHAPE)
    kept = only_kept(result)
    assert [t.content for t in kept.turns] == [QUESTION, ANSWER]
    assert result.changed == {"empty_final_round_removed": 1}


def test_shape_without_repair_drops_an_empty_final_answer() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", "And then?"), ("assistant", ""))
    assert only_drop(repair_shape([c], config=ShapeConfig(repair=False)))[0] == "empty_turn"


def test_shape_removes_leading_non_user_turns() -> None:
    c = conversation(("assistant", ANSWER), ("assistant", ANSWER), ("user", QUESTION), ("assistant", ANSWER))
    result = repair_shape([c], config=SHAPE)
    assert roles(only_kept(result)) == ["user", "assistant"]
    assert result.changed == {"leading_non_user_removed": 1}


def test_shape_removes_a_trailing_user_turn() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", "One more thing?"))
    result = repair_shape([c], config=SHAPE)
    assert roles(only_kept(result)) == ["user", "assistant"]
    assert result.changed == {"trailing_user_removed": 1}


def test_shape_trims_whitespace_at_the_end_of_every_turn() -> None:
    c = conversation(("user", QUESTION + " \n"), ("assistant", "  " + ANSWER + "\n\n  "), ("user", QUESTION))
    result = repair_shape([c, conversation(("user", QUESTION), ("assistant", ANSWER), id="c2")], config=SHAPE)
    assert [t.content for t in result.kept[0].turns] == [QUESTION, "  " + ANSWER]  # leading indentation is kept
    assert result.kept[1].turns == conversation(("user", QUESTION), ("assistant", ANSWER), id="c2").turns
    assert result.changed == {"trailing_whitespace_trimmed": 1, "trailing_user_removed": 1}
    # a turn of whitespace alone is an empty turn
    no_repair = SHAPE.model_copy(update={"repair": False})
    blank = repair_shape([conversation(("user", QUESTION), ("assistant", " \n "))], config=no_repair)
    assert [d.reason for d in blank.dropped] == ["empty_turn"]


def test_shape_counts_each_repair_once_per_conversation() -> None:
    c = conversation(("assistant", ANSWER), ("user", QUESTION), ("assistant", ANSWER), ("user", "More?"))
    other = conversation(("assistant", ANSWER), ("user", QUESTION), ("assistant", ANSWER), id="c2")
    result = repair_shape([c, other], config=SHAPE)
    assert len(result.kept) == 2
    assert result.changed == {"leading_non_user_removed": 2, "trailing_user_removed": 1}


@pytest.mark.parametrize(
    "turns",
    [
        (("assistant", ANSWER), ("user", QUESTION), ("assistant", ANSWER)),  # leading assistant
        (("user", QUESTION), ("assistant", ANSWER), ("user", QUESTION)),  # trailing user
    ],
)
def test_shape_without_repair_drops_what_repair_would_fix(turns: tuple[tuple[Role, str], ...]) -> None:
    result = repair_shape([conversation(*turns)], config=ShapeConfig(repair=False))
    assert only_drop(result)[0] == "roles_not_alternating"


def test_shape_drops_consecutive_user_turns_in_the_middle() -> None:
    c = conversation(
        ("user", QUESTION),
        ("assistant", ANSWER),
        ("user", "Thanks"),
        ("user", "Will do"),
        ("assistant", ANSWER),
    )
    reason, detail = only_drop(repair_shape([c], config=SHAPE))
    assert reason == "roles_not_alternating"
    assert "turn 3" in detail


def test_shape_drops_consecutive_assistant_turns_rather_than_merging() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("assistant", "An answer to a lost question."))
    assert only_drop(repair_shape([c], config=SHAPE))[0] == "roles_not_alternating"


def test_shape_keeps_a_first_system_turn() -> None:
    c = conversation(("system", "Be brief."), ("user", QUESTION), ("assistant", ANSWER))
    assert roles(only_kept(repair_shape([c], config=SHAPE))) == ["system", "user", "assistant"]


def test_shape_drops_a_system_turn_that_is_not_first() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("system", "New rules."), ("user", QUESTION))
    c = c.model_copy(update={"turns": (*c.turns, Turn(role="assistant", content=ANSWER, source_role="gpt"))})
    reason, detail = only_drop(repair_shape([c], config=SHAPE))
    assert reason == "roles_not_alternating"
    assert "system" in detail


def test_shape_removes_a_first_system_turn_when_not_kept() -> None:
    c = conversation(("system", "Be brief."), ("user", QUESTION), ("assistant", ANSWER))
    result = repair_shape([c], config=ShapeConfig(keep_system=False))
    assert roles(only_kept(result)) == ["user", "assistant"]
    assert result.changed == {"leading_non_user_removed": 1}
    no_repair = repair_shape([c], config=ShapeConfig(keep_system=False, repair=False))
    assert only_drop(no_repair)[0] == "roles_not_alternating"


@pytest.mark.parametrize(
    "turns",
    [
        (("user", QUESTION),),
        (("assistant", ANSWER),),
        (("system", "shared from TypingMind"),),
        (("system", "Be brief."), ("user", QUESTION)),
    ],
)
def test_shape_drops_conversations_without_an_assistant_turn(turns: tuple[tuple[Role, str], ...]) -> None:
    assert only_drop(repair_shape([conversation(*turns)], config=SHAPE))[0] == "no_assistant_turn"


def test_shape_drops_too_few_characters() -> None:
    reason, detail = only_drop(repair_shape([conversation(("user", "hi"), ("assistant", "hello"))], config=SHAPE))
    assert reason == "too_short"
    assert "7 chars" in detail


def test_shape_drops_too_few_turns() -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER))
    assert only_drop(repair_shape([c], config=ShapeConfig(min_turns=4)))[0] == "too_short"
    assert only_kept(repair_shape([c], config=ShapeConfig(min_turns=2))) == c


def test_shape_does_not_count_the_system_turn_towards_length() -> None:
    c = conversation(("system", "A long system prompt " * 5), ("user", "hi"), ("assistant", "hey"))
    assert only_drop(repair_shape([c], config=SHAPE))[0] == "too_short"


# --- model ----------------------------------------------------------------------------------


def test_model_filter_off_keeps_everything() -> None:
    convs = [conversation(id="a", model="Model: GPT-4"), conversation(id="b")]
    result = keep_allowed_models(convs, config=ModelConfig())
    assert result.kept == convs and result.dropped == []


def test_model_filter_keeps_exact_banner_matches_only() -> None:
    gpt4 = conversation(id="gpt4", model="Model: GPT-4")
    default = conversation(id="default", model="Model: Default (GPT-3.5)")
    lower = conversation(id="lower", model="model: gpt-4")
    unknown = conversation(id="unknown")
    result = keep_allowed_models([gpt4, default, lower, unknown], config=ModelConfig(allowed_models=("Model: GPT-4",)))
    assert [c.id for c in result.kept] == ["gpt4"]
    by_id = {d.conversation_id: d for d in result.dropped}
    assert {d.reason for d in result.dropped} == {"model_not_allowed"}
    assert set(by_id) == {"default", "lower", "unknown"}
    assert "Default (GPT-3.5)" in by_id["default"].detail
    assert by_id["default"].stage == "model"


def test_model_filter_keeps_unknown_models_when_asked() -> None:
    config = ModelConfig(allowed_models=("Model: GPT-4",), keep_unknown=True)
    result = keep_allowed_models([conversation(id="u"), conversation(id="d", model="Model: Default")], config=config)
    assert [c.id for c in result.kept] == ["u"]
    assert [d.conversation_id for d in result.dropped] == ["d"]


# --- blocked phrases ------------------------------------------------------------------------

DROP_MODE = BlockedConfig(mode="drop")
ZERO_MODE = BlockedConfig(mode="zero_weight")


def test_blocked_drop_mode_drops_a_phrase_in_an_assistant_turn() -> None:
    c = conversation(
        ("user", QUESTION),
        ("assistant", ANSWER),
        ("user", "What do you think?"),
        ("assistant", "As an AI language model, I have no opinions."),
    )
    reason, detail = only_drop(apply_blocked_phrases([c], config=DROP_MODE))
    assert reason == "blocked_word"
    assert "as an ai language model" in detail and "turn=3" in detail


@pytest.mark.parametrize(
    "answer",
    [
        "**As  an AI\nLanguage   Model**, I cannot.",  # case, markdown, whitespace
        "I’m sorry, but I cannot help with that.",  # curly apostrophe
        "ＡＳ ＡＮ ＡＩ ＬＡＮＧＵＡＧＥ ＭＯＤＥＬ I decline.",  # full-width
    ],
)
def test_blocked_matching_is_on_normalized_text(answer: str) -> None:
    c = conversation(("user", QUESTION), ("assistant", answer))
    assert only_drop(apply_blocked_phrases([c], config=DROP_MODE))[0] == "blocked_word"


@pytest.mark.parametrize(
    "answer",
    ["Speaking as a language modeler, entropy matters.", "Every phone has a language model built in."],
)
def test_blocked_phrases_match_whole_words_only(answer: str) -> None:
    c = conversation(("user", QUESTION), ("assistant", answer))
    assert only_kept(apply_blocked_phrases([c], config=DROP_MODE)) == c


def test_blocked_phrases_in_user_turns_do_not_count() -> None:
    c = conversation(
        ("user", "How do I call the OpenAI API? Reply as an AI language model would."), ("assistant", ANSWER)
    )
    fastchat = BlockedConfig(mode="drop", phrases=FASTCHAT_BLOCKED_WORDS)
    assert only_kept(apply_blocked_phrases([c], config=fastchat)) == c
    assert only_kept(apply_blocked_phrases([c], config=ZERO_MODE)) == c


def test_blocked_fastchat_words_drop_an_assistant_mention() -> None:
    c = conversation(("user", QUESTION), ("assistant", "I was built by OpenAI."))
    fastchat = BlockedConfig(mode="drop", phrases=FASTCHAT_BLOCKED_WORDS)
    reason, detail = only_drop(apply_blocked_phrases([c], config=fastchat))
    assert reason == "blocked_word" and "openai" in detail


def test_blocked_zero_weight_mode_unweights_only_the_offending_turn() -> None:
    c = conversation(
        ("user", QUESTION),
        ("assistant", ANSWER),
        ("user", "Browse the web for me."),
        ("assistant", "I'm not able to browse the internet, but here is what I know."),
    )
    result = apply_blocked_phrases([c], config=ZERO_MODE)
    kept = only_kept(result)
    assert [t.weight for t in kept.turns] == [None, None, None, 0.0]
    assert [t.content for t in kept.turns] == [t.content for t in c.turns]
    assert result.changed == {"turns_zero_weighted": 1, "conversations_zero_weighted": 1}


def test_blocked_zero_weight_mode_drops_when_no_answer_is_left_to_train() -> None:
    c = conversation(
        ("user", QUESTION),
        ("assistant", "As an AI language model, I cannot."),
        ("user", "Please?"),
        ("assistant", "My knowledge cutoff prevents that."),
    )
    result = apply_blocked_phrases([c], config=ZERO_MODE)
    reason, detail = only_drop(result)
    assert reason == "all_turns_unsupervised"
    assert "2 turns zeroed" in detail
    assert result.changed == {}


@pytest.mark.parametrize(
    "answer",
    [
        "Too many requests in 1 hour. Try again later.",
        "too many requests in 1 hour.  try again later.",
        "Too many requests in 1 hour. Try again later. (extra widget text)",
        "network error",
    ],
)
def test_blocked_error_responses_drop_in_both_modes(answer: str) -> None:
    c = conversation(("user", QUESTION), ("assistant", ANSWER), ("user", QUESTION), ("assistant", answer))
    for config in (DROP_MODE, ZERO_MODE):
        reason, detail = only_drop(apply_blocked_phrases([c], config=config))
        assert reason == "blocked_response"
        assert "turn 3" in detail


def test_blocked_error_response_must_be_the_whole_message() -> None:
    c = conversation(("user", QUESTION), ("assistant", "Network errors are usually caused by DNS problems."))
    assert only_kept(apply_blocked_phrases([c], config=DROP_MODE)) == c


def test_blocked_with_no_phrases_still_drops_error_responses() -> None:
    config = BlockedConfig(phrases=())
    ok = conversation(("user", QUESTION), ("assistant", "As an AI language model, fine."), id="ok")
    bad = conversation(("user", QUESTION), ("assistant", "Network error"), id="bad")
    result = apply_blocked_phrases([ok, bad], config=config)
    assert [c.id for c in result.kept] == ["ok"]
    assert [d.reason for d in result.dropped] == ["blocked_response"]


# --- secrets --------------------------------------------------------------------------------

# Fake credentials in each issuer's format (random-looking, mixed case and digits).
FAKE_KEYS = {
    "openai legacy": "sk-" + "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5dE7fG9hJ1kL3",
    "openai project": "sk-proj-" + "Xy7_Kp2-Lm9Qr4Tz6Wb8" * 6,
    "aws": "AKIAZ7Q2M4N6P8R2T4V6",
    "github classic": "ghp_" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2",
    "github oauth": "gho_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8",
    "github fine-grained": "github_pat_11ABCDEFG0" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV1wX2yZ3aB4cD5eF6gH7iJ8kL9",
    "google": "AIza" + "Sy9_aB1-cD2eF3gH4iJ5kL6mN7oP8qR9sT0",
    "slack": "xoxb-1234567890123-1234567890123-aB1cD2eF3gH4iJ5kL6mN7oP8",
    "hugging face": "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH",
}
PEM_BODY = "\n".join(["MIIEpAIBAAKCAQEA7bq98bS3cPh2Ku5mY6yv0Xw2dQk1Fz9r3gT5hJ8kL2mN4pQ6"] * 4)
SECRETS = SecretsConfig()


@pytest.mark.parametrize("kind", sorted(FAKE_KEYS))
def test_secrets_redacts_each_api_key_kind(kind: str) -> None:
    key = FAKE_KEYS[kind]
    text, counts = redact_text(f'API_KEY = "{key}"  # keep this private', config=SECRETS)
    assert text == 'API_KEY = "<API_KEY>"  # keep this private'
    assert counts == {"api_keys_redacted": 1}


def test_secrets_redacts_a_private_key_block_but_keeps_its_frame() -> None:
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
    text, counts = redact_text(f"My key:\n{block}\nWhy does ssh reject it?", config=SECRETS)
    assert text == (
        "My key:\n-----BEGIN RSA PRIVATE KEY-----\n<API_KEY>\n-----END RSA PRIVATE KEY-----\nWhy does ssh reject it?"
    )
    assert counts == {"api_keys_redacted": 1}


def test_secrets_redacts_a_truncated_private_key_block() -> None:
    text, counts = redact_text(f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n\nIs this valid?", config=SECRETS)
    assert "MIIE" not in text and text.endswith("\n\nIs this valid?")
    assert counts == {"api_keys_redacted": 1}


@pytest.mark.parametrize(
    "text",
    [
        'SLACK_TOKEN = "xoxp-your-token-here"',
        'openai.api_key = "sk-YOUR_OPENAI_API_KEY_HERE"',
        'OPENAI_API_KEY="sk-your-secret-key-1234567890abcdef"',
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "token = hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        "from huggingface_hub import hf_hub_download; pip install scikit-learn; task-runner",
    ],
)
def test_secrets_leaves_placeholders_and_look_alikes(text: str) -> None:
    assert redact_text(text, config=SECRETS) == (text, {})


def test_secrets_redacts_personal_emails() -> None:
    text, counts = redact_text(
        "Contact jane.roe+jobs@gmail.com or [j.doe@uni.ac.uk](mailto:j.doe@uni.ac.uk).", config=SECRETS
    )
    assert text == "Contact <EMAIL> or [<EMAIL>](mailto:<EMAIL>)."
    assert counts == {"emails_redacted": 3}


@pytest.mark.parametrize(
    "text",
    [
        "Send it to user@example.com, admin@example.org or ops@example.net.",
        "noreply@mail.example.com is a subdomain of a reserved name",
        "alice@service.test and bob@host.example and carol@box.invalid",
        "admin@localhost",
        "git clone git@github.com:org/repo.git",
        "postgresql://admin:...@db-host.ondigitalocean.com:25060/app",
        "background: url(icon@2x.png)",
        "@app.route('/') and @Override and a@b",
    ],
)
def test_secrets_leaves_reserved_domains_and_non_addresses(text: str) -> None:
    assert redact_text(text, config=SECRETS) == (text, {})


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",
        "+1 (415) 555-2671",
        "+49 151 12345678",
        "+44 (0)7792959309",
        "+81-3-3407-8811",
        "+4915112345678",
        "(415) 555-2671",
        "(516)-974-4700",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-0199",
    ],
)
def test_secrets_redacts_phone_numbers(phone: str) -> None:
    text, counts = redact_text(f"Call me at {phone}, thanks.", config=SECRETS)
    assert text == "Call me at <PHONE>, thanks."
    assert counts == {"phone_numbers_redacted": 1}


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2023-01-15 at 2023-01-15T10:30:00+05:30.",
        "Upgrade from version 1.2.3 to 10.15.7 or v2.0.0-rc.1",
        "Ping 192.168.1.1 and 10.0.0.255",
        "n = 1234567",
        "seed = 12345678901234567890",
        "ts = 4155552671",
        "PIN: 11-21-212-046-0000",
        "PINs: 17-03-231-518-1116",
        "serial 415-555-2671-0042 and build 415.555.2671.12",
        "ISBN 978-3-16-148410-0",
        "x = a+12345678; y = 6.022e+23",
        "OPOS 12.00 TACTIQ.IO +6144,POS Purchase",
        "| 250 300 1200 |",
        "range(100, 200) step 300-400",
        "Meeting ID: 3903 03 5809",
        "id 123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_secrets_leaves_numbers_that_are_not_phone_numbers(text: str) -> None:
    assert redact_text(text, config=SECRETS) == (text, {})


def test_secrets_requires_valid_north_american_digits() -> None:
    # Area codes and exchanges never start with 0 or 1 (NANP), so this classic fake is no number.
    for fake in ("Phone: 123-456-7890", "Phone: 415-123-4567", "Phone: (415) 055-2671"):
        assert redact_text(fake, config=SECRETS) == (fake, {})


def test_secrets_stage_redacts_every_role_and_counts_per_kind() -> None:
    c = conversation(
        ("system", "Support line: (415) 555-2671"),
        ("user", f"My key is {FAKE_KEYS['openai legacy']} and my mail jane@gmail.com"),
        ("assistant", "Never share keys. Write to jane@gmail.com or example@example.com instead."),
    )
    untouched = conversation(("user", QUESTION), ("assistant", ANSWER), id="c2")
    result = redact_secrets([c, untouched], config=SECRETS)
    assert result.dropped == []
    assert [k.id for k in result.kept] == ["c1", "c2"]
    assert [t.content for t in result.kept[0].turns] == [
        "Support line: <PHONE>",
        "My key is <API_KEY> and my mail <EMAIL>",
        "Never share keys. Write to <EMAIL> or example@example.com instead.",
    ]
    assert result.kept[1] == untouched
    assert result.changed == {
        "api_keys_redacted": 1,
        "emails_redacted": 2,
        "phone_numbers_redacted": 1,
        "conversations_redacted": 1,
    }


def test_secrets_kinds_can_be_switched_off() -> None:
    text = f"jane@gmail.com (415) 555-2671 {FAKE_KEYS['aws']}"
    config = SecretsConfig(redact_api_keys=False, redact_emails=False, redact_phone_numbers=False)
    assert redact_text(text, config=config) == (text, {})
    only_mail = SecretsConfig(redact_api_keys=False, redact_phone_numbers=False)
    assert redact_text(text, config=only_mail)[0] == f"<EMAIL> (415) 555-2671 {FAKE_KEYS['aws']}"


# --- language -------------------------------------------------------------------------------

ENGLISH = "Could you please explain how photosynthesis works in plants and why it matters for life on Earth?"
FRENCH = (
    "Bonjour, pourriez-vous m'expliquer comment fonctionne la photosynthèse chez les plantes"
    " et pourquoi elle est importante ?"
)
CHINESE = "请详细解释一下植物的光合作用是如何进行的，以及它为什么对地球上的生命如此重要。"
EN_ONLY = LanguageConfig(allowed=("en",))


def test_language_filter_off_keeps_everything_without_detecting() -> None:
    convs = [conversation(("user", FRENCH), ("assistant", ANSWER))]
    assert keep_allowed_languages(convs, config=LanguageConfig()) == StageResult(convs, [], {})


def test_language_keeps_english() -> None:
    c = conversation(("user", ENGLISH), ("assistant", ANSWER))
    assert only_kept(keep_allowed_languages([c], config=EN_ONLY)) == c


@pytest.mark.parametrize(("text", "language"), [(FRENCH, "fr"), (CHINESE, "zh")], ids=["fr", "zh"])
def test_language_drops_other_languages(text: str, language: str) -> None:
    result = keep_allowed_languages([conversation(("user", text), ("assistant", ANSWER))], config=EN_ONLY)
    reason, detail = only_drop(result)
    assert reason == "language_not_allowed"
    assert detail.startswith(f"detected={language} ")
    assert result.dropped[0].stage == "language"


def test_language_allows_several_languages_and_regional_codes() -> None:
    convs = [
        conversation(("user", FRENCH), ("assistant", ANSWER)),
        conversation(("user", CHINESE), ("assistant", ANSWER)),
    ]
    result = keep_allowed_languages(convs, config=LanguageConfig(allowed=("en", "fr", "zh-CN")))
    assert len(result.kept) == 2 and result.dropped == []


def test_language_share_is_weighed_by_characters() -> None:
    c = conversation(("user", ENGLISH + " " + ENGLISH), ("assistant", ANSWER), ("user", FRENCH), ("assistant", ANSWER))
    assert only_kept(keep_allowed_languages([c], config=LanguageConfig(allowed=("en",), min_share=0.5))) == c
    strict = keep_allowed_languages([c], config=LanguageConfig(allowed=("en",), min_share=0.9))
    reason, detail = only_drop(strict)
    assert reason == "language_not_allowed" and "fr 0.3" in detail


def test_language_ignores_code_links_and_too_short_turns() -> None:
    c = conversation(
        ("user", "continue"),
        ("assistant", ANSWER),
        ("user", "```python\nimport numpy as np\nx = np.arange(10)\nprint(x.mean())\n```"),
        ("assistant", ANSWER),
        ("user", "https://fr.wikipedia.org/wiki/Photosynth%C3%A8se_chez_les_plantes_vertes"),
        ("assistant", ANSWER),
    )
    assert only_kept(keep_allowed_languages([c], config=EN_ONLY)) == c


def test_language_leaves_out_turns_langdetect_is_unsure_about() -> None:
    # langdetect: fr 0.86, en 0.14. Neither side reaches 0.9, so the turn is not judged at all:
    # alone it keeps the conversation, and beside a sure French turn it does not outweigh it.
    unsure = 'What does "je ne sais quoi" mean and how do I use joie de vivre?'
    alone = conversation(("user", unsure), ("assistant", ANSWER))
    assert only_kept(keep_allowed_languages([alone], config=EN_ONLY)) == alone
    french = "Merci beaucoup, pourriez-vous donner un autre exemple ?"
    beside = conversation(("user", unsure), ("assistant", ANSWER), ("user", french), ("assistant", ANSWER))
    reason, detail = only_drop(keep_allowed_languages([beside], config=EN_ONLY))
    assert reason == "language_not_allowed" and "fr 1.00" in detail


def test_language_keeps_terse_english_that_langdetect_would_misjudge() -> None:
    # langdetect calls each of these French or Spanish with probability > 0.99.
    c = conversation(
        ("user", "give more examples"),
        ("assistant", ANSWER),
        ("user", "Are you sure ?"),
        ("assistant", ANSWER),
        ("user", "codes please"),
        ("assistant", ANSWER),
    )
    assert only_kept(keep_allowed_languages([c], config=EN_ONLY)) == c


def test_language_detection_is_repeatable_and_leaves_langdetect_global_seed_alone() -> None:
    assert language_detector_factory().seed == 0
    seed_before = DetectorFactory.seed
    convs = [
        conversation(("user", text), ("assistant", ANSWER), id=str(i))
        for i, text in enumerate([ENGLISH, FRENCH, CHINESE, "Tell me about Idi Amin Dada and Augusto Pinochet."])
    ]
    first = keep_allowed_languages(convs, config=EN_ONLY)
    second = keep_allowed_languages(convs, config=EN_ONLY)
    assert first == second
    assert DetectorFactory.seed == seed_before


# --- every drop reason of these stages ------------------------------------------------------

FILTER_DROP_REASONS = {
    "no_turns",
    "empty_turn",
    "roles_not_alternating",
    "no_assistant_turn",
    "too_short",
    "model_not_allowed",
    "blocked_word",
    "blocked_response",
    "all_turns_unsupervised",
    "language_not_allowed",
}


def test_every_filter_drop_reason_exists_in_the_ledger_schema() -> None:
    # Each reason above has a test asserting it exactly; this catches a rename in schemas/.
    assert FILTER_DROP_REASONS <= set(DROP_REASONS)


# --- the real ShareGPT sample ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_conversations(sharegpt_sample: list[dict[str, Any]]) -> list[Conversation]:
    return sharegpt_conversations(sharegpt_sample)


@pytest.fixture(scope="module")
def shaped_sample(sample_conversations: list[Conversation]) -> list[Conversation]:
    return repair_shape(sample_conversations, config=SHAPE).kept


def assert_accounts_for_every_input(result: StageResult, inputs: list[Conversation], stage: str) -> None:
    assert len(inputs) == len(result.kept) + len(result.dropped)
    out_ids = [c.id for c in result.kept] + [d.conversation_id for d in result.dropped]
    assert sorted(out_ids) == sorted(c.id for c in inputs)
    assert {d.stage for d in result.dropped} <= {stage}
    assert {d.reason for d in result.dropped} <= FILTER_DROP_REASONS
    assert all(d.input_file == "sample" and d.record_index is not None for d in result.dropped)


@pytest.mark.shared_data
def test_real_sample_shape(sample_conversations: list[Conversation]) -> None:
    result = repair_shape(sample_conversations, config=SHAPE)
    assert_accounts_for_every_input(result, sample_conversations, "shape")
    reasons = [d.reason for d in result.dropped]
    assert reasons.count("no_turns") == sum(1 for c in sample_conversations if not c.turns)
    for kept in result.kept:
        dialogue = [t.role for t in kept.turns if t.role != "system"]
        assert dialogue == ["user", "assistant"] * (len(dialogue) // 2)
        assert all(not is_blank(t.content) for t in kept.turns)
    # Split parts of long conversations start with an answer: most repairs are of that kind.
    assert result.changed["leading_non_user_removed"] > 0
    assert sum(result.changed.values()) >= 1


@pytest.mark.shared_data
def test_real_sample_model(shaped_sample: list[Conversation]) -> None:
    config = ModelConfig(allowed_models=("Model: GPT-4",))
    result = keep_allowed_models(shaped_sample, config=config)
    assert_accounts_for_every_input(result, shaped_sample, "model")
    assert len(result.kept) == sum(1 for c in shaped_sample if c.model == "Model: GPT-4")
    lenient = keep_allowed_models(shaped_sample, config=config.model_copy(update={"keep_unknown": True}))
    assert_accounts_for_every_input(lenient, shaped_sample, "model")
    assert len(lenient.kept) == sum(1 for c in shaped_sample if c.model in (None, "Model: GPT-4"))


@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["drop", "zero_weight"])
def test_real_sample_blocked(shaped_sample: list[Conversation], mode: str) -> None:
    result = apply_blocked_phrases(shaped_sample, config=BlockedConfig(mode=mode))  # type: ignore[arg-type]
    assert_accounts_for_every_input(result, shaped_sample, "blocked")
    # An independent oracle: a plain substring test per phrase, then the word-boundary check.
    phrases = [normalize_text(p) for p in REFUSAL_PHRASES]

    def holds_phrase(text: str) -> bool:
        return any(p in text and re.search(rf"\b{re.escape(p)}\b", text) for p in phrases)

    for kept in result.kept:
        for turn in kept.turns:
            text = normalize_text(turn.content).replace("\u2019", "'")
            has_phrase = turn.role == "assistant" and holds_phrase(text)
            if mode == "drop":
                assert not has_phrase, (kept.id, turn.content[:200])
            else:
                assert (turn.weight == 0.0) == has_phrase, (kept.id, turn.content[:200])


@pytest.mark.shared_data
def test_real_sample_secrets(sample_conversations: list[Conversation]) -> None:
    result = redact_secrets(sample_conversations, config=SECRETS)
    assert_accounts_for_every_input(result, sample_conversations, "secrets")
    assert result.dropped == []
    # Personal webmail addresses in the input never survive; redaction is idempotent.
    for before, after in zip(sample_conversations, result.kept, strict=True):
        assert before.id == after.id and len(before.turns) == len(after.turns)
        for turn in after.turns:
            assert "@gmail.com" not in turn.content and "@hotmail.com" not in turn.content
            assert redact_text(turn.content, config=SECRETS) == (turn.content, {})
    redacted = sum(1 for b, a in zip(sample_conversations, result.kept, strict=True) if b != a)
    assert result.changed.get("conversations_redacted", 0) == redacted


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_sample_language(shaped_sample: list[Conversation]) -> None:
    result = keep_allowed_languages(shaped_sample, config=EN_ONLY)
    assert_accounts_for_every_input(result, shaped_sample, "language")
    assert result.dropped, "the sample holds Spanish, French, Korean and Chinese conversations"
    assert len(result.dropped) < len(shaped_sample) // 20
    for d in result.dropped:
        detected = re.match(r"detected=([a-z]+) ", d.detail)
        assert detected is not None and detected.group(1) != "en", d.detail
