"""Tokenization: a conversation rendered with a chat template, as token ids and a loss mask.

The ids and the mask are built piece by piece (curation.shards.chat_templates.TemplatePiece): each
template string and each message content is encoded on its own and the results concatenated, so
every token belongs to exactly one piece and takes that piece's mask. The mask is 1 on assistant
content and its end of turn (turns with weight None or > 0) and 0 everywhere else, by
construction; nothing is recovered from the rendered string afterwards.

Special tokens. A template string is cut at the tokenizer's added tokens ("<s>", "<|end|>"), which
become their ids; the text between them is encoded. Message content is always plain text: a
"</s>" or "<|im_end|>" typed by a user never becomes a control token. It is encoded normally and,
only when that produced a special token's id, again with a copy of the tokenizer whose
`encode_special_tokens` is on (special tokens read as text); the caller's tokenizer is never
changed. Where a tokenizer lacks a template's token (ChatML's "<|im_start|>" in Mistral's
vocabulary) the template writes it as text, the way transformers' apply_chat_template would.

How pieces join. The aim is the ids `tokenizer.encode(rendered text)` gives, which is what
transformers feeds a model from its own chat template, except that content is never read for
special tokens. Two things make encoding pieces separately differ from encoding the whole text,
and both are handled:
- Both SentencePiece ("▁Hello") and byte-level BPE ("ĠHello") join a space to the word after it.
  So spaces at the end of a piece are moved to the start of the next text piece: the header
  "[INST] " and the content "Hi" encode as "[INST]" and " Hi" -> "▁Hi", as in the whole text.
  The token "▁Hi" then belongs to the content (and is trained when the content is).
- SentencePiece tokenizers put a dummy "▁" before every stretch of text (the whole input, and
  each stretch after a special token). A piece that continues text, like "Hello" after the
  header "<|user|>\\n", must not get one, so it is encoded behind an anchor ("\\n", which never
  merges with what follows) and the anchor's tokens are dropped: "\\nHello" -> ▁ \\n Hello ->
  Hello. A stretch that starts after a special token is encoded as the tokenizer treats it in
  whole text, found out once per call by encoding a special token followed by text.
Decoding the ids therefore gives the rendered text, except that with SentencePiece tokenizers a
space appears after each special token that text follows ("<|user|> \\nHi", "<s> [INST]"): that
is the dummy "▁" the tokenizer itself puts there when it encodes the whole text.

The ids equal those of the whole rendered text wherever the template's strings meet messages at
whitespace or at special tokens: Llama 2, Vicuna and Tulu with the Phi-3 or Mistral tokenizer,
Phi-3 and Phi-3's own jinja template with the Phi-3 tokenizer (every alternating conversation of
the real sample, content with special-token strings aside). They differ where a template string
spelled as text touches a message: encoded whole, "done.<|im_end|>" lets BPE merge ".<" across
the border. Pieces never merge, on purpose: the end of turn then always has the same tokens, and
no token straddles the border between trained and untrained text.

Speed: all distinct texts of a batch go to one `encode_batch` call, which spreads them over the
tokenizer's thread pool; template strings, repeated in every conversation, are encoded once, and
a part's texts once for both split and tokenize (ConversationEncoder).
(`encode_batch_fast`, which skips character offsets, measured no faster on the real sample.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os.path import commonprefix

from tokenizers import Tokenizer

from curation.shards.chat_templates import ChatTemplate, PieceKind, TemplatePiece, template_pieces
from curation.shards.tokenizer_load import COUNT_BLOCK_CHARS, batch_token_counter
from curation.stage import Stage
from schemas.conversation import Conversation, Provenance, Role, Turn
from schemas.ledger import Dropped
from schemas.shards import TokenizedConversation

__all__ = [
    "ConversationEncoder",
    "EncodedPiece",
    "encode_template_pieces",
    "probe_conversation",
    "render_supervised_text",
    "supervised_span_edges",
    "supervised_spans",
    "tokenize_conversation",
    "tokenize_conversations",
    "tokenize_with",
]

# Encoded in front of text that continues a stretch of text, then dropped (see the docstring).
# A newline: SentencePiece vocabularies have no piece holding one (it is a byte-fallback token),
# so nothing after it can merge with it. Should a tokenizer merge it anyway, the text is encoded
# on its own instead.
_ANCHOR = "\n"


@dataclass(frozen=True)
class EncodedPiece:
    """A stretch of the rendered conversation and its ids: a special token, or text from one
    template piece (with spaces carried in from the text before it)."""

    text: str
    ids: tuple[int, ...]
    supervised: bool
    kind: PieceKind
    role: Role | None
    turn_index: int | None
    special: bool  # a template control string that is one of the tokenizer's added tokens


@dataclass(frozen=True)
class _Part:
    text: str
    special_id: int | None
    continues_text: bool  # text right after other text, not after a special token or the start
    piece: TemplatePiece


class _PieceEncoder:
    """What one call needs to know about the tokenizer, worked out once per call."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        added = tokenizer.get_added_tokens_decoder()
        # Template strings are cut at every added token, as encoding the whole text would cut them.
        self.added_ids = {token.content: token_id for token_id, token in added.items()}
        self.special_ids = frozenset(token_id for token_id, token in added.items() if token.special)
        by_length = sorted(self.added_ids, key=len, reverse=True)
        self.added_pattern = re.compile("|".join(map(re.escape, by_length))) if by_length else None
        self.anchor_ids = tokenizer.encode(_ANCHOR, add_special_tokens=False).ids
        self.plain_after_special = self._text_after_special_is_encoded_alone()
        self._text_only: Tokenizer | None = None
        self._cuts: dict[str, list[tuple[str, int | None]]] = {}

    def _text_after_special_is_encoded_alone(self) -> bool:
        # True for Phi-3's and the built-in Mistral's tokenizer.json (each stretch gets its own
        # dummy "▁"); False for e.g. Metaspace(prepend_scheme="first"), which adds it once.
        special = next((t for t, i in self.added_ids.items() if i in self.special_ids), None)
        if special is None:
            return True
        sample = "Hello world"
        whole = self.tokenizer.encode(special + sample, add_special_tokens=False).ids
        return whole == [self.added_ids[special], *self.tokenizer.encode(sample, add_special_tokens=False).ids]

    def text_only(self) -> Tokenizer:
        """A copy of the tokenizer that reads special-token strings as plain text."""
        if self._text_only is None:
            copy = Tokenizer.from_str(self.tokenizer.to_str())
            copy.encode_special_tokens = True
            self._text_only = copy
        return self._text_only

    def _cut_at_added_tokens(self, text: str) -> list[tuple[str, int | None]]:
        """A template string as its texts and added tokens (ids), in order; cached per call since
        every conversation repeats the same few strings."""
        cut = self._cuts.get(text)
        if cut is None:
            cut, start = [], 0
            for match in self.added_pattern.finditer(text) if self.added_pattern else ():
                if match.start() > start:
                    cut.append((text[start : match.start()], None))
                cut.append((match.group(), self.added_ids[match.group()]))
                start = match.end()
            if start < len(text):
                cut.append((text[start:], None))
            self._cuts[text] = cut
        return cut

    def parts(self, pieces: Sequence[TemplatePiece]) -> list[_Part]:
        """The pieces cut at added tokens, with trailing spaces moved into the next text."""
        cut: list[tuple[str, int | None, TemplatePiece]] = []
        for piece in pieces:
            if piece.kind == "content":
                cut.append((piece.text, None, piece))
            else:
                cut.extend((text, token_id, piece) for text, token_id in self._cut_at_added_tokens(piece.text))
        parts: list[_Part] = []
        carried = ""
        for i, (text, special_id, piece) in enumerate(cut):
            if special_id is not None:
                parts.append(_Part(text, special_id, False, piece))
                continue
            text, carried = carried + text, ""
            if i + 1 < len(cut) and cut[i + 1][1] is None:
                kept = text.rstrip(" ")
                text, carried = kept, text[len(kept) :]
            if text:
                after_text = bool(parts) and parts[-1].special_id is None
                after_special = bool(parts) and not after_text
                continues = after_text or (after_special and not self.plain_after_special)
                parts.append(_Part(text, None, continues, piece))
        return parts

    def encode_texts(self, keys: Sequence[tuple[str, bool]]) -> dict[tuple[str, bool], list[int]]:
        """Ids of each (text, continues_text), all in one encode_batch call."""
        encoded = dict(zip(keys, self._encode(self.tokenizer, keys), strict=True))
        # Text that spelled a special token ("</s>" typed in a message) got its id: read it again
        # as plain text. Rare, so only these texts pay for the tokenizer copy.
        respell = [key for key, ids in encoded.items() if not self.special_ids.isdisjoint(ids)]
        if respell:
            encoded.update(zip(respell, self._encode(self.text_only(), respell), strict=True))
        return encoded

    def _encode(self, tokenizer: Tokenizer, keys: Sequence[tuple[str, bool]]) -> list[list[int]]:
        texts = [_ANCHOR + text if continues else text for text, continues in keys]
        results = [enc.ids for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
        n = len(self.anchor_ids)
        alone: list[int] = []  # continuing texts the anchor merged with: encoded on their own
        for i, (ids, (_, continues)) in enumerate(zip(results, keys, strict=True)):
            if continues:
                if ids[:n] == self.anchor_ids:
                    results[i] = ids[n:]
                else:
                    alone.append(i)
        if alone:
            again = tokenizer.encode_batch([keys[i][0] for i in alone], add_special_tokens=False)
            for i, enc in zip(alone, again, strict=True):
                results[i] = enc.ids
        return results


class ConversationEncoder:
    """Conversations rendered with a chat template and encoded, each distinct text once for the
    encoder's life: the split stage's counts and the tokenize stage's ids of one part come from
    the same encode_batch calls (flows.split). It keeps every text's ids, and each conversation's
    rendered parts, until it is dropped, so it lives for one part."""

    def __init__(self, tokenizer: Tokenizer, template: ChatTemplate) -> None:
        self.template = template
        self._encoder = _PieceEncoder(tokenizer)
        self._encoded: dict[tuple[str, bool], list[int]] = {}
        # By object: split passes on the conversations that fit as the very objects it counted, so
        # tokenize renders only the pieces anew. The conversation is held so that its id is not reused.
        self._rendered: dict[int, tuple[Conversation, list[_Part]]] = {}
        self._count_texts = batch_token_counter(tokenizer)  # block by block past COUNT_BLOCK_CHARS

    def parts(self, convs: Sequence[Conversation]) -> list[list[_Part]]:
        """Each conversation's parts, every text among them encoded (those not encoded before in one call)."""
        part_lists = self._part_lists(convs)
        self._encode_missing(part_lists, longest=None)
        return part_lists

    def _part_lists(self, convs: Sequence[Conversation]) -> list[list[_Part]]:
        lists = []
        for conv in convs:
            rendered = self._rendered.get(id(conv))
            if rendered is None or rendered[0] is not conv:
                rendered = conv, self._encoder.parts(template_pieces(self.template, conv.turns))
                self._rendered[id(conv)] = rendered
            lists.append(rendered[1])
        return lists

    def _encode_missing(self, part_lists: list[list[_Part]], *, longest: int | None) -> None:
        # An insertion-ordered set: each distinct text is encoded once (template strings repeat).
        missing = {
            key: None
            for parts in part_lists
            for p in parts
            if p.special_id is None
            and (key := (p.text, p.continues_text)) not in self._encoded
            and (longest is None or len(p.text) <= longest)
        }
        if missing:
            self._encoded.update(self._encoder.encode_texts(list(missing)))

    def ids(self, part: _Part) -> list[int]:
        return [part.special_id] if part.special_id is not None else self._encoded[(part.text, part.continues_text)]

    def content_token_counts(self, convs: Sequence[Conversation]) -> list[int]:
        """The tokens of each turn's content as the template encodes it (spaces moved in from its
        header included), flat over the conversations' turns in order: the split stage's counts.

        A content over COUNT_BLOCK_CHARS is counted block by block and not kept, to bound memory
        (tokenizer_load.COUNT_BLOCK_CHARS); such a turn fits no piece in any real budget.
        """
        part_lists = self._part_lists(convs)
        self._encode_missing(part_lists, longest=COUNT_BLOCK_CHARS)
        counts: list[int] = []
        for conv, parts in zip(convs, part_lists, strict=True):
            per_turn = [0] * len(conv.turns)
            for part in parts:
                if part.piece.kind == "content" and part.piece.turn_index is not None:
                    key = (part.text, part.continues_text)
                    tokens = len(self._encoded[key]) if key in self._encoded else self._count_texts([part.text])[0]
                    per_turn[part.piece.turn_index] += tokens
            counts.extend(per_turn)
        return counts

    def tokenize(self, convs: Iterable[Conversation]) -> tuple[list[TokenizedConversation], list[Dropped]]:
        """The conversations as ids and loss masks; one with no supervised token is dropped
        ("no_supervised_tokens": every answer has weight 0, or the template trains nothing)."""
        conversations = list(convs)
        kept: list[TokenizedConversation] = []
        dropped: list[Dropped] = []
        for conv, parts in zip(conversations, self.parts(conversations), strict=True):
            tokenized = self.tokenized(conv, parts)
            if 1 in tokenized.loss_mask:
                kept.append(tokenized)
            else:
                dropped.append(_no_supervised_tokens(conv))
        return kept, dropped

    def tokenized(self, conv: Conversation, parts: list[_Part]) -> TokenizedConversation:
        input_ids: list[int] = []
        loss_mask: list[int] = []
        for part in parts:
            ids = self.ids(part)
            input_ids.extend(ids)
            loss_mask.extend([1 if part.piece.supervised else 0] * len(ids))
        return TokenizedConversation(
            conversation_id=conv.id,
            input_ids=tuple(input_ids),
            loss_mask=tuple(loss_mask),
            input_file=conv.provenance.input_file,
            record_index=conv.provenance.record_index,
        )


def encode_template_pieces(conv: Conversation, *, tokenizer: Tokenizer, template: ChatTemplate) -> list[EncodedPiece]:
    """The conversation's pieces and their ids, in order; for inspection and checks."""
    encoder = ConversationEncoder(tokenizer, template)
    (parts,) = encoder.parts([conv])
    return [
        EncodedPiece(
            text=part.text,
            ids=tuple(encoder.ids(part)),
            supervised=part.piece.supervised,
            kind=part.piece.kind,
            role=part.piece.role,
            turn_index=part.piece.turn_index,
            special=part.special_id is not None,
        )
        for part in parts
    ]


def tokenize_conversation(conv: Conversation, *, tokenizer: Tokenizer, template: ChatTemplate) -> TokenizedConversation:
    """One conversation as ids and loss mask (kept even when nothing in it is supervised)."""
    encoder = ConversationEncoder(tokenizer, template)
    (parts,) = encoder.parts([conv])
    return encoder.tokenized(conv, parts)


# Probe rounds for supervised_span_edges: contents that share no first or last token, so that what
# every span has in common is the template's alone.
_PROBE_ROUNDS = (
    ("What is 2 + 2?", "It is 4."),
    ("Tell me more, please", "Sure: two and two make four, as counting shows"),
    ("ok\nthanks", "Bye!"),
)
# Longer than any template's answer header or end of turn.
_EDGE_LIMIT = 16


def probe_conversation(*, system: str | None = None) -> Conversation:
    """A made-up conversation of the _PROBE_ROUNDS (after a system prompt, if given), for finding
    what a template writes around every conversation or answer."""
    roles: tuple[Role, Role] = ("user", "assistant")
    turns = [
        Turn(role=r, content=text, source_role=r) for pair in _PROBE_ROUNDS for r, text in zip(roles, pair, strict=True)
    ]
    if system is not None:
        turns.insert(0, Turn(role="system", content=system, source_role="system"))
    provenance = Provenance(input_file="probe", content_hash="probe")
    return Conversation(id="probe", source="probe", turns=tuple(turns), provenance=provenance)


def _common_suffix(sequences: Sequence[Sequence[int]]) -> tuple[int, ...]:
    reversed_common = commonprefix([list(reversed(seq)) for seq in sequences])
    return tuple(reversed(reversed_common))


def supervised_span_edges(tokenizer: Tokenizer, template: ChatTemplate) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the ids every supervised span follows, the ids every span ends with): the answer's header
    and its end of turn, as found in probe conversations (with and without a system prompt) that
    share nothing else. `shards verify` holds every span of the shards against them."""
    before: list[Sequence[int]] = []
    spans: list[Sequence[int]] = []
    for probe in (probe_conversation(), probe_conversation(system="Be brief.")):
        tokenized = tokenize_conversation(probe, tokenizer=tokenizer, template=template)
        for start, end in supervised_spans(tokenized.loss_mask):
            before.append(tokenized.input_ids[max(0, start - _EDGE_LIMIT) : start])
            spans.append(tokenized.input_ids[start:end])
    closing = _common_suffix(spans)
    # A span is never all end of turn: its answer has at least one token of its own.
    return _common_suffix(before), closing[-min(_EDGE_LIMIT, min(len(s) for s in spans) - 1) :] if closing else ()


def _no_supervised_tokens(conv: Conversation) -> Dropped:
    answers = [t for t in conv.turns if t.role == "assistant"]
    zero = sum(1 for t in answers if t.weight is not None and t.weight <= 0)
    detail = f"assistant_turns={len(answers)} weight_0={zero}"
    return Dropped.of(conv, stage="tokenize", reason="no_supervised_tokens", detail=detail)


def tokenize_conversations(
    convs: Iterable[Conversation], *, tokenizer: Tokenizer, template: ChatTemplate
) -> tuple[list[TokenizedConversation], list[Dropped]]:
    """The batch as ids and loss masks (ConversationEncoder.tokenize, with an encoder of its own)."""
    return ConversationEncoder(tokenizer, template).tokenize(convs)


def tokenize_with(
    convs: Iterable[Conversation], *, encoder: ConversationEncoder
) -> tuple[list[TokenizedConversation], list[Dropped]]:
    """The batch as ids and loss masks with the part's encoder, which split may have filled already."""
    return encoder.tokenize(convs)


def supervised_spans(loss_mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of 1s in the mask."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, value in enumerate(loss_mask):
        if value and start is None:
            start = i
        elif not value and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(loss_mask)))
    return spans


def render_supervised_text(tokenized: TokenizedConversation, tokenizer: Tokenizer) -> list[str]:
    """The text of each supervised span, special tokens spelled out.

    Each span is decoded behind the anchor and the anchor's text removed: decoded alone, a
    SentencePiece decoder would drop the span's leading space as if it started the whole text.
    """
    anchor_ids = tokenizer.encode(_ANCHOR, add_special_tokens=False).ids
    anchor_text = tokenizer.decode(anchor_ids, skip_special_tokens=False)
    spans = [list(tokenized.input_ids[start:end]) for start, end in supervised_spans(tokenized.loss_mask)]
    texts = tokenizer.decode_batch([anchor_ids + span for span in spans], skip_special_tokens=False)
    return [
        text[len(anchor_text) :] if text.startswith(anchor_text) else tokenizer.decode(span, skip_special_tokens=False)
        for text, span in zip(texts, spans, strict=True)
    ]


# Per part; it reads no section itself: the flow builds the tokenizer and the template from these.
TOKENIZE = Stage("tokenize", tokenize_with, also_keyed=("tokenizer", "shards.template"))
