"""Encoding detection and segment counting, exactly as carriers bill a message."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.segment.gsm import (
    ESC,
    GSM7,
    GSM7_CONCAT,
    GSM7_SINGLE,
    UCS2,
    UCS2_CONCAT,
    UCS2_SINGLE,
    Encoding,
    is_gsm7,
    septet_stream,
)
from engine.segment.smart import Replacement, smart_replace


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a body will be sent: encoding, billed segments and the units (septets / UTF-16) in each.

    `body` is the text that will actually be sent (rewritten when smart encoding applied) and
    `replacements` the distinct (original, replacement) pairs used to get there.
    """

    encoding: Encoding
    segments: int
    units: int
    # A list because callers index, sum and compare it with lists; excluded from the hash so a
    # SegmentInfo stays hashable (equal infos still hash equal: the other fields determine it).
    per_segment: list[int] = field(hash=False)
    body: str
    replacements: tuple[Replacement, ...] = ()

    @property
    def is_unicode(self) -> bool:
        """True when the body goes out as UCS-2 (70 / 67 units per segment instead of 160 / 153)."""
        return self.encoding == UCS2


def analyze(body: str, *, smart: bool = False) -> SegmentInfo:
    """Pick the encoding and count segments; with `smart`, apply Twilio's look-alike table first.

    An empty body is one segment, as carriers bill it.  As in Twilio's calculator the table is
    applied before the encoding is chosen, so a body that still needs UCS-2 keeps its replacements.
    """
    if is_gsm7(body):  # the common case; no GSM character is in the smart table
        return _gsm7_info(body, ())
    replacements: tuple[Replacement, ...] = ()
    if smart:
        body, replacements = smart_replace(body)
        if is_gsm7(body):
            return _gsm7_info(body, replacements)
    return _ucs2_info(body, replacements)


def has_unicode(body: str, *, smart: bool = False) -> bool:
    """True when `body` must go out as UCS-2 (after smart encoding, if enabled).

    For destinations that cannot take Unicode: such a message is not sent and the application
    gets a `no_unicode_support` report instead.
    """
    if is_gsm7(body):
        return False
    return not (smart and is_gsm7(smart_replace(body)[0]))


def _gsm7_info(body: str, replacements: tuple[Replacement, ...]) -> SegmentInfo:
    """Septet layout: an extension character (ESC + code) never straddles two segments."""
    septets = septet_stream(body)
    total = len(septets)
    if total <= GSM7_SINGLE:
        return SegmentInfo(GSM7, 1, total, [total], body, replacements)
    per_segment: list[int] = []
    start = 0
    while total - start > GSM7_CONCAT:
        end = start + GSM7_CONCAT
        if septets[end - 1] == ESC:  # the escape would end this segment and its char start the next
            end -= 1
        per_segment.append(end - start)
        start = end
    per_segment.append(total - start)
    return SegmentInfo(GSM7, len(per_segment), total, per_segment, body, replacements)


def _ucs2_info(body: str, replacements: tuple[Replacement, ...]) -> SegmentInfo:
    """UTF-16 layout: a surrogate pair (emoji and other astral characters) is never split."""
    # surrogatepass: a lone surrogate in a Python str still counts as the one code unit it is.
    data = body.encode("utf-16-le", "surrogatepass")
    total = len(data) >> 1
    if total <= UCS2_SINGLE:
        return SegmentInfo(UCS2, 1, total, [total], body, replacements)
    per_segment: list[int] = []
    start = 0
    while total - start > UCS2_CONCAT:
        end = start + UCS2_CONCAT
        # High byte of the last unit (little-endian) in D800-DBFF: a high surrogate, keep it
        # with its low half in the next segment.
        if 0xD8 <= data[2 * end - 1] <= 0xDB:
            end -= 1
        per_segment.append(end - start)
        start = end
    per_segment.append(total - start)
    return SegmentInfo(UCS2, len(per_segment), total, per_segment, body, replacements)
