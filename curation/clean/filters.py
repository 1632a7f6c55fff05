"""Conversation filters: shape, model, blocked phrases and language stages.

Each stage is `fn(convs, *, config) -> StageResult`: the conversations it keeps (possibly
repaired), a Dropped record with a bounded reason for every one it removes, and counts of the
changes it made to kept ones. Secret redaction, which never drops, lives in curation/clean/secrets.py.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from curation.text import is_blank, normalize_text
from schemas.config import BlockedConfig, LanguageConfig, ModelConfig, ShapeConfig
from schemas.config.clean import base_language
from schemas.conversation import Conversation, Turn
from schemas.ledger import Dropped, DropReason, Stage, StageResult

__all__ = [
    "apply_blocked_phrases",
    "keep_allowed_languages",
    "keep_allowed_models",
    "language_detector_factory",
    "repair_shape",
]


def _dropped(conv: Conversation, *, stage: Stage, reason: DropReason, detail: str) -> Dropped:
    return Dropped.of(conv, stage=stage, reason=reason, detail=detail)


# --- shape ----------------------------------------------------------------------------------
#
# Consecutive turns of one role in the middle of a conversation are dropped, never merged. In
# ShareGPT two gpt turns in a row mean the user turn between them was lost or moderated away
# (the extension kept only a warning line, or nothing), so the second answer replies to a
# question the data no longer holds; two human turns in a row mean an answer is missing.
# Merging would glue together answers to different questions and teach the model to answer
# questions nobody asked. FastChat and OpenChat drop these conversations too.

_IndexedTurns = list[tuple[int, Turn]]  # (index in the input conversation, turn)


def _repair_turn_order(turns: _IndexedTurns, *, keep_system: bool) -> tuple[_IndexedTurns, Counter[str]]:
    """Turns with the repairs that have one clear meaning applied, and which repairs ran."""
    repairs: Counter[str] = Counter()
    head = turns[:1] if keep_system and turns and turns[0][1].role == "system" else []
    body = turns[len(head) :]
    # Nothing before the first user turn answers anything: split parts of long conversations
    # ("abc_1") start with the answer to a question in the previous part.
    first_user = next((i for i, (_, t) in enumerate(body) if t.role == "user"), len(body))
    if first_user:
        body = body[first_user:]
        repairs["leading_non_user_removed"] += 1
    # A final question without an answer teaches nothing.
    if body and body[-1][1].role == "user":
        body = body[:-1]
        repairs["trailing_user_removed"] += 1
    # An empty final answer (the page was saved while ChatGPT was still answering, or the
    # answer failed): cut that last round, as FastChat truncates at an empty answer.
    while body and body[-1][1].role == "assistant" and is_blank(body[-1][1].content):
        body = body[:-2] if len(body) >= 2 and body[-2][1].role == "user" else body[:-1]
        repairs["empty_final_round_removed"] += 1
    return head + body, repairs


def _trimmed(turn: Turn) -> Turn:
    content = turn.content.rstrip()
    return turn if content == turn.content else turn.model_copy(update={"content": content})


def _shape_problem(turns: _IndexedTurns, *, config: ShapeConfig) -> tuple[DropReason, str] | None:
    """Why these (already repaired) turns cannot be kept, or None when they can."""
    for index, turn in turns:
        if is_blank(turn.content):
            return "empty_turn", f"turn {index} ({turn.source_role}) has no text"
    for position, (index, turn) in enumerate(turns):
        if turn.role == "system" and (position > 0 or not config.keep_system):
            return "roles_not_alternating", f"system turn at {index} (only a first one is kept)"
    dialogue = [(i, t) for i, t in turns if t.role != "system"]
    if not any(t.role == "assistant" for _, t in dialogue):
        return "no_assistant_turn", f"{len(turns)} turns left, none from the assistant"
    for position, (index, turn) in enumerate(dialogue):
        expected = "user" if position % 2 == 0 else "assistant"
        if turn.role != expected:
            return (
                "roles_not_alternating",
                f"turn {index} is {turn.role} ({turn.source_role}), expected {expected}",
            )
    if dialogue[-1][1].role != "assistant":
        return "roles_not_alternating", f"ends with a user turn (turn {dialogue[-1][0]})"
    chars = sum(len(t.content) for _, t in dialogue)
    if len(dialogue) < config.min_turns or chars < config.min_chars:
        return (
            "too_short",
            f"{len(dialogue)} turns, {chars} chars (min {config.min_turns}, {config.min_chars})",
        )
    return None


def repair_shape(convs: Iterable[Conversation], *, config: ShapeConfig) -> StageResult:
    """Conversations whose turns run [system] user, assistant, user, ..., assistant, with no
    blank turn and at least config.min_turns dialogue turns and config.min_chars characters.

    With config.repair, leading non-user turns, one trailing user turn and empty final rounds are
    cut first; `changed` counts the kept conversations each repair touched. Without it, such
    conversations drop as "roles_not_alternating" or "empty_turn". System turns are not counted
    towards the minimum turns and characters.

    Whitespace at the end of every turn is trimmed (trailing_whitespace_trimmed): it means nothing,
    and a chat template's end of turn written after it tokenizes differently (" </s>" after "done. "
    is "▁▁" "</s>", not "▁" "</s>"), so the shards' answer spans would lose the end of turn every
    other answer has; a question's would change the answer header after it.
    """
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    changed: Counter[str] = Counter()
    for conv in convs:
        if not conv.turns:
            dropped.append(_dropped(conv, stage="shape", reason="no_turns", detail="0 turns"))
            continue
        turns: _IndexedTurns = [(i, _trimmed(t)) for i, t in enumerate(conv.turns)]
        repairs: Counter[str] = Counter()
        if any(t is not original for (_, t), original in zip(turns, conv.turns, strict=True)):
            repairs["trailing_whitespace_trimmed"] += 1
        if config.repair:
            turns, order_repairs = _repair_turn_order(turns, keep_system=config.keep_system)
            repairs += order_repairs
        problem = _shape_problem(turns, config=config)
        if problem is not None:
            reason, detail = problem
            if repairs:
                detail += f" (after {', '.join(sorted(repairs))})"
            dropped.append(_dropped(conv, stage="shape", reason=reason, detail=detail))
            continue
        changed += repairs
        kept.append(conv.model_copy(update={"turns": tuple(t for _, t in turns)}) if repairs else conv)
    return StageResult(kept=kept, dropped=dropped, changed=dict(changed))


# --- model ----------------------------------------------------------------------------------


def keep_allowed_models(convs: Iterable[Conversation], *, config: ModelConfig) -> StageResult:
    """Conversations whose ChatGPT banner is exactly one of config.allowed_models (as OpenChat
    keeps "Model: GPT-4"); those without a banner only when config.keep_unknown. All of them
    when allowed_models is None.
    """
    if config.allowed_models is None:
        return StageResult(kept=list(convs), dropped=[], changed={})
    allowed = frozenset(config.allowed_models)
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    for conv in convs:
        if conv.model in allowed or (conv.model is None and config.keep_unknown):
            kept.append(conv)
        else:
            detail = f"model={conv.model!r}" if conv.model is not None else "no model banner"
            dropped.append(_dropped(conv, stage="model", reason="model_not_allowed", detail=detail))
    return StageResult(kept=kept, dropped=dropped, changed={})


# --- blocked phrases ------------------------------------------------------------------------
#
# Only assistant turns are searched. FastChat matched every role, so a user asking how to call
# the OpenAI API dropped the conversation; what a user asks about says nothing about whether the
# answer is worth training on. A refusal or AI disclaimer in an answer is the signal.


def _phrase_alternation(phrases: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any of `phrases` in normalized text, built once per stage call.

    One search per assistant turn: on the real sample's 16 MB of assistant text the 38 default
    phrases take about 0.5 s, as long again as normalize_text, so the stage runs at about 3,500
    conversations a second. Longer phrases come first, so where two start at one position the
    more specific is reported. A phrase starting or ending with a letter must start or end at a
    word boundary ("as a language model" does not hit "as a language modeler"). Straight and
    curly apostrophes match each other: ChatGPT wrote both.
    """
    normalized = sorted({normalize_text(p) for p in phrases if normalize_text(p)}, key=len, reverse=True)
    if not normalized:
        return None
    alternatives = []
    for phrase in normalized:
        body = re.escape(phrase.replace("\u2019", "'")).replace("'", "['\u2019]")
        start = r"\b" if phrase[0].isalnum() else ""
        end = r"\b" if phrase[-1].isalnum() else ""
        alternatives.append(f"{start}{body}{end}")
    return re.compile("|".join(alternatives))


def _error_response(normalized_turn: str, normalized_errors: Sequence[str]) -> str | None:
    """The ChatGPT error message this assistant turn consists of or starts with, if any.

    A bare prefix test would take "network errors are..." for the "network error" widget, so
    the message must end at the end of the turn or before a non-alphanumeric character.
    """
    for error in normalized_errors:
        if normalized_turn.startswith(error):
            rest = normalized_turn[len(error) :]
            if not rest or not rest[0].isalnum():
                return error
    return None


def apply_blocked_phrases(convs: Iterable[Conversation], *, config: BlockedConfig) -> StageResult:
    """Conversations without ChatGPT error messages as answers, and without blocked phrases in
    assistant turns (mode "drop") or with the assistant turns that hold one set to weight 0.0
    (mode "zero_weight", as OpenChat does with refusals).

    Matching is case-insensitive on `normalize_text`. In mode "zero_weight", a conversation left
    with no assistant turn of nonzero weight drops as "all_turns_unsupervised". `changed` counts
    "turns_zero_weighted" and "conversations_zero_weighted" among the kept.
    """
    pattern = _phrase_alternation(config.phrases)
    errors = [e for e in (normalize_text(r) for r in config.error_responses) if e]
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    changed: Counter[str] = Counter()
    for conv in convs:
        assistant = [(i, normalize_text(t.content)) for i, t in enumerate(conv.turns) if t.role == "assistant"]
        error_hit = next(((i, e) for i, text in assistant if (e := _error_response(text, errors))), None)
        if error_hit is not None:
            detail = f"turn {error_hit[0]}: {error_hit[1]!r}"
            dropped.append(_dropped(conv, stage="blocked", reason="blocked_response", detail=detail))
            continue
        hits = [] if pattern is None else [(i, m.group(0)) for i, text in assistant if (m := pattern.search(text))]
        if not hits:
            kept.append(conv)
            continue
        if config.mode == "drop":
            index, phrase = hits[0]
            detail = f"phrase={phrase!r} turn={index}"
            dropped.append(_dropped(conv, stage="blocked", reason="blocked_word", detail=detail))
            continue
        zeroed = {i for i, _ in hits}
        turns = tuple(t.model_copy(update={"weight": 0.0}) if i in zeroed else t for i, t in enumerate(conv.turns))
        if not any(t.role == "assistant" and t.weight != 0.0 for t in turns):
            index, phrase = hits[0]
            detail = f"{len(zeroed)} turns zeroed, none supervised left; first phrase={phrase!r} turn={index}"
            dropped.append(_dropped(conv, stage="blocked", reason="all_turns_unsupervised", detail=detail))
            continue
        changed["turns_zero_weighted"] += len(zeroed)
        changed["conversations_zero_weighted"] += 1
        kept.append(conv.model_copy(update={"turns": turns}))
    return StageResult(kept=kept, dropped=dropped, changed=dict(changed))


# --- language -------------------------------------------------------------------------------

# Code and links say nothing about the language a user writes in.
_CODE_AND_LINKS = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`|https?://\S+|www\.\S+", re.DOTALL)
# langdetect is unreliable on short Latin-script text. Measured on the 3003 real conversations'
# Latin-script user turns (nearly all English): it called 48-88% of those under 20 letters
# non-English ("continue" -> it, "go on" -> cy), 10% at 20-29 letters, 6% at 30-39 and at most
# 3% from 40 on. Short turns are left out rather than guessed.
_MIN_LATIN_LETTERS = 40
# Other scripts narrow the language down by themselves (Hangul, kana, Han, Cyrillic...): a short
# Korean or Chinese prompt is still clearly not English.
_MIN_OTHER_SCRIPT_LETTERS = 10
# A turn counts only when langdetect is this sure that it is, or that it is not, in an allowed
# language. On the 3003 real conversations with allowed=["en"], going by the likeliest language
# alone dropped 31; this rule drops 23. The 9 it spares are English requests around code or
# names; it adds one (English around unfenced code). langdetect stays confidently wrong on some
# terse English ("data vs information - give a detailed comparison" -> it).
_MIN_PROBABILITY = 0.9
# langdetect reads 10,000 characters by default; 2,000 tell a language as well and bound the
# n-gram extraction of long pastes.
_MAX_CHARS_TO_DETECT = 2000


def _detectable_text(text: str) -> str:
    return _CODE_AND_LINKS.sub(" ", text)


def _is_latin(char: str) -> bool:
    # Basic Latin through Latin Extended-B, and Latin Extended Additional (Vietnamese).
    return ord(char) < 0x250 or 0x1E00 <= ord(char) <= 0x1EFF


def _long_enough_to_detect(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    latin = sum(_is_latin(c) for c in letters)
    if len(letters) - latin > latin:
        return len(letters) >= _MIN_OTHER_SCRIPT_LETTERS
    return len(letters) >= _MIN_LATIN_LETTERS


def _language_probabilities(factory: DetectorFactory, text: str) -> dict[str, float]:
    """langdetect's probability per ISO 639-1 code for `text`, regional variants summed ("zh-cn"
    and "zh-tw" count as "zh"); empty when it finds no features in the text."""
    detector = factory.create()
    detector.set_max_text_length(_MAX_CHARS_TO_DETECT)
    detector.append(text)
    try:
        candidates = detector.get_probabilities()
    except LangDetectException:
        return {}
    probabilities: dict[str, float] = {}
    for candidate in candidates:
        language = str(candidate.lang).split("-")[0]
        probabilities[language] = probabilities.get(language, 0.0) + float(candidate.prob)
    return probabilities


def _judged_language(probabilities: dict[str, float], allowed: frozenset[str]) -> str | None:
    """The language a turn counts as: the likeliest allowed one when the allowed languages
    together reach _MIN_PROBABILITY, the likeliest other one when the others do, else None.

    Which disallowed language it is matters less than that it is one: langdetect splits Chinese
    between zh and ko (Korean profiles hold Hanja), and neither alone may be sure.
    """
    for keep_side in (True, False):
        side = {lang: p for lang, p in probabilities.items() if (lang in allowed) == keep_side}
        if side and sum(side.values()) >= _MIN_PROBABILITY:
            return max(side, key=lambda lang: side[lang])
    return None


def _user_language_verdict(
    conv: Conversation, *, factory: DetectorFactory, allowed: frozenset[str], min_share: float
) -> tuple[bool, Counter[str]]:
    """Whether at least `min_share` of the conversation's judged user text is in an allowed
    language, and the characters judged per language (code and links left out).

    Turns too short to judge are left out, not concatenated: many user turns are "continue" or
    "Please continue" over and over, and joined they only give langdetect more of the same
    too-little evidence (four "Please continue" come out as Spanish). With nothing judged, the
    conversation passes. Detection costs ~2.5 ms a turn, so turns go longest first and detection
    stops once the remaining turns, all in another language, could no longer pull the share
    below `min_share`.
    """
    texts = [_detectable_text(t.content) for t in conv.turns if t.role == "user"]
    judgeable = sorted((t.strip() for t in texts if _long_enough_to_detect(t)), key=len, reverse=True)
    undetected = sum(len(t) for t in judgeable)
    chars: Counter[str] = Counter()
    judged = allowed_chars = 0
    for text in judgeable:
        if allowed_chars >= min_share * (judged + undetected):
            return True, chars
        undetected -= len(text)
        language = _judged_language(_language_probabilities(factory, text), allowed)
        if language is None:
            continue
        chars[language] += len(text)
        judged += len(text)
        if language in allowed:
            allowed_chars += len(text)
    return allowed_chars >= min_share * judged, chars


def language_detector_factory() -> DetectorFactory:
    """A langdetect factory with every profile loaded and seed 0, so detection is repeatable.

    The seed is set on this instance (DetectorFactory.set_seed assigns an instance attribute),
    not on langdetect's module-level factory, so no other caller's results change.
    """
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def keep_allowed_languages(convs: Iterable[Conversation], *, config: LanguageConfig) -> StageResult:
    """Conversations in which at least config.min_share of the user text (by characters, code and
    links left out) is in one of config.allowed. All of them when allowed is None.

    Conversations with too little user text to judge are kept. Profiles load once per call
    (about 0.3 s), so call it on batches, not on single conversations.
    """
    if config.allowed is None:
        return StageResult(kept=list(convs), dropped=[], changed={})
    allowed = frozenset(base_language(code) for code in config.allowed)
    factory = language_detector_factory()
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    for conv in convs:
        passes, chars = _user_language_verdict(conv, factory=factory, allowed=allowed, min_share=config.min_share)
        if passes:
            kept.append(conv)
            continue
        total = sum(chars.values())
        allowed_share = sum(n for lang, n in chars.items() if lang in allowed) / total
        shares = ", ".join(f"{lang} {n / total:.2f}" for lang, n in chars.most_common())
        detail = f"detected={chars.most_common(1)[0][0]} (user text: {shares}; allowed share {allowed_share:.2f})"
        dropped.append(_dropped(conv, stage="language", reason="language_not_allowed", detail=detail))
    return StageResult(kept=kept, dropped=dropped, changed={})
