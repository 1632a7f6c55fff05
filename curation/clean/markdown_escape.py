"""Escaping for ChatGPT's markdown dialect: write a backslash only where a character would start markup.

The converter marks each literal character of the HTML's text with a stand-in (a Unicode
noncharacter) so that, once the markdown around it is built, these functions can decide from the
finished line whether the literal needs a backslash: `snake_case` stays, `__init__` does not.
"""

from __future__ import annotations

import re
import unicodedata

# Text characters that may need a backslash, depending on what surrounds them in the final
# markdown. Text is first written with these stand-ins (Unicode noncharacters, which real text
# does not use; html_to_markdown replaces any in its input), and each block resolves them once its
# whole inline content is known (resolve_literals).
STAND_INS = {"\\": "\ufdd0", "*": "\ufdd1", "_": "\ufdd2", "`": "\ufdd3", "[": "\ufdd4", "]": "\ufdd5"}
STAND_INS |= {"<": "\ufdd6", "&": "\ufdd7", "!": "\ufdd8"}
LINE_BREAK = "\ufdd9"  # a <br>: a hard break inside a paragraph, a space in a cell
# Ends a code body that had no final newline: only a fence left open at the end of the document
# keeps such a body exact (markdown-it's own reading of an unclosed fence).
NO_FINAL_NEWLINE = "\ufdda"
MARK_LITERALS = str.maketrans(STAND_INS)
_UNMARK_LITERALS = str.maketrans({v: k for k, v in STAND_INS.items()})
_STAND_IN = re.compile("[\ufdd0-\ufdd9]")
_NO_STAND_INS = str.maketrans({stand_in: None for stand_in in STAND_INS.values()})
OUR_NONCHARACTERS = {code: "\ufffd" for code in range(0xFDD0, 0xFDDB)}

_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ENTITY_LIKE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_AUTOLINK_LIKE = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\x00-\x20]*"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)>"
)
_DELIMITER_RUN = re.compile(r"\*+|_+")
# A line that would open a block where it stands; its first character (after digits) gets a backslash.
_BLOCK_START = re.compile(
    r"#{1,6}(?:[ \t]|$)"  # ATX heading
    r"|>"  # block quote
    r"|[-+*](?:[ \t]|$)"  # bullet list item
    r"|[0-9]{1,9}[.)](?:[ \t]|$)"  # ordered list item
    r"|([-*_])(?:[ \t]*\1){2,}[ \t]*$"  # thematic break
    r"|`{3,}[^`]*$|~{3,}"  # code fence (a backtick fence's info string has no backtick)
)
THEMATIC_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*(?:\n|$)")
_SETEXT_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*$")
_TABLE_DELIMITER_ROW = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
# "[label]: destination" (optionally then a title) would become a link reference definition.
_LINK_DEFINITION_LIKE = re.compile(
    r"\[(?:[^\]\\]|\\.)*(?:[^\]\\\s]|\\.)(?:[^\]\\]|\\.)*\]:[ \t]*(?:$|(?:<[^>]*>|\S+)[ \t]*(?:$|[\"'(]))"
)
ATX_CLOSING_HASHES = re.compile(r"(^|[ \t])(#+[ \t]*)$")
_SPACES_BEFORE_LINE_END = re.compile("(" + STAND_INS["\\"] + " )? *\n[ \t]*")
_HARD_BREAK = re.compile(LINE_BREAK + r"[ \t]*\n?[ \t]*")
_ORDERED_FROM_ONE = re.compile(r"0*1[.)]")


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or (not ch.isascii() and unicodedata.category(ch)[0] in "PS")


def _is_space(ch: str) -> bool:
    return ch in " \t\n\r\f\v\u00a0\u1680\u202f\u205f\u3000" or "\u2000" <= ch <= "\u200a"


def _emphasis_escapes(marked: str, plain: str) -> set[int]:
    """Positions of literal `*`/`_` that could take part in emphasis, so need a backslash.

    By CommonMark's flanking rules a run can open or close emphasis; its literal characters are
    escaped when some run that can open comes before some run that can close, since only then can
    anything pair. A lone "a * b", "2*3" and snake_case stay as they are.
    """
    escapes: set[int] = set()
    for char in "*_":
        if STAND_INS[char] not in marked:
            continue
        candidates: list[tuple[int, int]] = []
        opener_seen = False
        # Real emphasis of this character always pairs (the character in code or a URL is counted
        # too, to be safe); otherwise pairing needs a run that can open before one that can close.
        pair_possible = char in marked.translate(_NO_STAND_INS)
        for run in _DELIMITER_RUN.finditer(plain):
            start, end = run.span()
            if plain[start] != char:
                continue
            backslashes = 0
            while start - backslashes > 0 and marked[start - backslashes - 1] == "\\":
                backslashes += 1
            if backslashes % 2:  # its first character is escaped already
                start += 1
                if start == end:
                    continue
            before = plain[start - 1] if start else " "
            after = plain[end] if end < len(plain) else " "
            left = not (
                _is_space(after) or (_is_punctuation(after) and not (_is_space(before) or _is_punctuation(before)))
            )
            right = not (
                _is_space(before) or (_is_punctuation(before) and not (_is_space(after) or _is_punctuation(after)))
            )
            if char == "*":
                can_open, can_close = left, right
            else:  # "_" may not open or close inside a word
                can_open = left and (not right or _is_punctuation(before))
                can_close = right and (not left or _is_punctuation(after))
            pair_possible = pair_possible or (can_close and opener_seen)
            opener_seen = opener_seen or can_open
            literal = sum(1 for i in range(start, end) if marked[i] == STAND_INS[char])
            if can_open or can_close or 0 < literal < end - start:
                # (A run mixing literal and real delimiters must be split for the real ones to work.)
                candidates.append((start, end))
        if pair_possible:
            for start, end in candidates:
                escapes.update(i for i in range(start, end) if marked[i] == STAND_INS[char])
    return escapes


def resolve_literals(marked: str) -> str:
    """Inline markdown with each literal stand-in replaced by its character, escaped where it must be."""
    if not _STAND_IN.search(marked):
        return marked
    plain = marked.translate(_UNMARK_LITERALS)
    emphasis = _emphasis_escapes(marked, plain)
    out: list[str] = []
    last = 0
    for found in _STAND_IN.finditer(marked):
        i = found.start()
        char = plain[i]
        after = plain[i + 1 : i + 2]
        if char == "\\":
            escape = after in _ASCII_PUNCTUATION or after == "\n"
        elif char in "*_":
            escape = i in emphasis
        elif char == "`":
            escape = True  # rare in text, and it could pair with any code span's backticks
        elif char == "]":
            escape = after == "("  # no reference definitions are written, so only "](" links
        elif char == "<":
            escape = bool(_AUTOLINK_LIKE.match(plain, i))
        elif char == "&":
            escape = bool(_ENTITY_LIKE.match(plain, i))
        elif char == "!":
            escape = marked[i + 1 : i + 2] == "["  # before a real link it would make an image
        else:  # "[" opens nothing without a "](" after it, which gets escaped
            escape = False
        out.append(marked[last:i])
        out.append("\\" + char if escape else char)
        last = i + 1
    out.append(marked[last:])
    return "".join(out)


def paragraph_markdown(marked: str) -> str:
    """A paragraph's markdown: lines trimmed as the parser would, literals resolved, block starts escaped."""
    text = marked.lstrip(" \t\n").rstrip(" \t\n" + LINE_BREAK)
    # The parser drops spaces (not tabs) before a line end, except one right after a backslash,
    # and all blanks after it; two spaces would even make a hard break. markdown-it writes a
    # newline after <br>, React did not: either way a <br> is one hard break, written "\\\n".
    if "\n" in text:
        text = _SPACES_BEFORE_LINE_END.sub(lambda m: (m[1] or "") + "\n", text)
    if LINE_BREAK in text:
        text = _HARD_BREAK.sub("\\\\\n", text)
    lines = resolve_literals(text).split("\n")
    for k, line in enumerate(lines):
        opens = bool(_BLOCK_START.match(line))
        if opens and k and line[0].isdigit() and not _ORDERED_FROM_ONE.match(line):
            opens = False  # only an ordered list starting at 1 may interrupt a paragraph
        if k and not opens:
            opens = bool(_SETEXT_UNDERLINE.match(line)) or bool(
                _TABLE_DELIMITER_ROW.match(line) and ("|" in line or "|" in lines[k - 1])
            )
        if opens:
            digits = len(line) - len(line.lstrip("0123456789"))
            lines[k] = line[:digits] + "\\" + line[digits:]
    if lines and _LINK_DEFINITION_LIKE.match(lines[0]):
        lines[0] = "\\" + lines[0]
    return "\n".join(lines)
