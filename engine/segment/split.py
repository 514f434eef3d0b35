"""Splitting a long body into standalone `(i/n) `-prefixed SMS for carriers that refuse concatenation."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Final, Literal

from engine.segment.analyze import analyze
from engine.segment.graphemes import clusters
from engine.segment.gsm import GSM7, GSM7_EXTENSION, GSM7_SINGLE, UCS2_SINGLE

SplitMode = Literal["character", "word", "sentence"]
SPLIT_MODES: Final[tuple[SplitMode, ...]] = ("character", "word", "sentence")

_SENTENCE_ENDS: Final = frozenset(",.!?")
_LINE_BREAKS: Final = frozenset("\n\r")


def split_message(body: str, mode: str = "character", *, smart: bool = False) -> list[str]:
    """Cut `body` into parts that each fit ONE SMS of the message's encoding, prefix included.

    A body that fits one SMS comes back unchanged as the only part.  Otherwise parts are prefixed
    `(i/n) `; only whitespace at split points is dropped, nothing else is lost or reordered.
    Cuts fall where segment boundaries may: never inside a GSM extension character or a grapheme
    cluster (as `analyze` counts them), except a cluster too long for half an SMS.
    Modes: "character" (most compact), "word" (a word is broken only when the part would
    otherwise be more than half empty), "sentence" (cut after , . ! ? or at a line break when
    the part stays at least half full; else as "word").
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode {mode!r}; expected one of {', '.join(SPLIT_MODES)}")
    info = analyze(body, smart=smart)
    if info.encoding == GSM7:
        limit = GSM7_SINGLE
        if info.units <= limit:
            return [info.body]
        text = list(info.body)
        costs = [2 if char in GSM7_EXTENSION else 1 for char in text]
    else:
        limit = UCS2_SINGLE
        if info.units <= limit:
            return [info.body]
        text = _ucs2_atoms(info.body, limit // 2)
        costs = [_utf16_units(atom) for atom in text]
    # cumulative[k] = units of the first k atoms; lets "how much fits from here" be one bisect.
    cumulative = [0, *accumulate(costs)]
    # The prefix width depends on the part count, which depends on the prefix width: budget for
    # `width` digits in n and widen until the count fits (widening only ever adds room).
    width = 1
    while True:
        parts = _split(text, cumulative, limit, width, mode)
        if len(str(len(parts))) <= width:
            break
        width = len(str(len(parts)))
    count = len(parts)
    if count == 1:  # only whitespace overflowed, and it was dropped at the split point
        return parts
    return [f"({index}/{count}) {part}" for index, part in enumerate(parts, 1)]


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for char in text if char > "\uffff")


def _ucs2_atoms(body: str, longest: int) -> list[str]:
    """The grapheme clusters of `body`; one longer than `longest` units is cut into code points."""
    atoms: list[str] = []
    for cluster in clusters(body):
        if len(cluster) > 1 and _utf16_units(cluster) > longest:
            atoms.extend(cluster)
        else:
            atoms.append(cluster)
    return atoms


def _split(text: list[str], cumulative: list[int], limit: int, width: int, mode: str) -> list[str]:
    """Greedy split of the atoms (characters or clusters), each part's capacity being `limit` less its prefix."""
    parts: list[str] = []
    length = len(text)
    start = 0
    while start < length:
        capacity = limit - (4 + len(str(len(parts) + 1)) + width)
        # Largest end with units(text[start:end]) <= capacity; an atom costs at most half an SMS
        # and a prefix takes less than the other half, so end > start.
        end = bisect_right(cumulative, cumulative[start] + capacity) - 1
        if end >= length:
            parts.append("".join(text[start:]))
            break
        if mode == "sentence":
            cut = _sentence_cut(text, cumulative, start, end, capacity)
        elif mode == "word":
            cut = _word_cut(text, cumulative, start, end, capacity)
        else:
            cut = end
        part = "".join(text[start:cut]).rstrip()
        if part:  # empty only for a body opening with a capacity's worth of whitespace
            parts.append(part)
        start = cut
        while start < length and text[start].isspace():
            start += 1
    return parts


def _half_full(text: list[str], cumulative: list[int], start: int, cut: int, capacity: int) -> bool:
    """Whether text[start:cut], less trailing whitespace, fills at least half the capacity."""
    while cut > start and text[cut - 1].isspace():
        cut -= 1
    return 2 * (cumulative[cut] - cumulative[start]) >= capacity


def _word_cut(text: list[str], cumulative: list[int], start: int, end: int, capacity: int) -> int:
    """Cut at the last whitespace that fits; fill with characters if that leaves it over half empty."""
    if text[end].isspace() or text[end - 1].isspace():
        return end  # the character cut already falls between words
    cut = end - 1
    while cut > start and not text[cut].isspace():
        cut -= 1
    if cut > start and _half_full(text, cumulative, start, cut, capacity):
        return cut
    return end


def _sentence_cut(text: list[str], cumulative: list[int], start: int, end: int, capacity: int) -> int:
    """Cut at the last `, . ! ?` + whitespace or line break that fits; else fall back to words.

    A cut point is a whitespace character (dropped with the split) preceded by one of `, . ! ?`,
    or a line break.  Only the latest such point is tried: any earlier one leaves less text.
    """
    for cut in range(end, start, -1):
        char = text[cut]
        if char.isspace() and (char in _LINE_BREAKS or text[cut - 1] in _SENTENCE_ENDS):
            if _half_full(text, cumulative, start, cut, capacity):
                return cut
            break
    return _word_cut(text, cumulative, start, end, capacity)
