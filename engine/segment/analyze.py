"""Encoding detection and segment counting, exactly as Twilio bills a message.

The rules are those of Twilio's segment calculator (npm `sms-segments-calculator` 1.3.0):

1. With smart encoding, the look-alike table is applied first (`smart.py`), always.
2. GSM-7 when every character is in the GSM 03.38 default or extension table, else UCS-2.
3. Segments are filled in order with whole characters: a GSM extension character (two septets)
   and a grapheme cluster (UCS-2: a letter with its marks, a flag, an emoji sequence) are never
   split.  One SMS holds 160 septets / 70 UTF-16 units; once a second is needed every segment
   carries a 6-octet header and holds 153 / 67.
4. The first segment is filled as a single SMS and, when the message turns out longer, trimmed
   back to the concatenated limit; what is trimmed moves to the second segment *together with the
   character that did not fit*, unchecked.  Only a cluster longer than ~30 units can make that
   differ from plain greedy filling (the second segment then overflows, as the calculator counts
   it), and a first cluster longer than 70 units leaves the first segment empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.frozen import fast_init
from engine.segment.graphemes import Ucs2Boundaries
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


@fast_init
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

    An empty body is one segment, as carriers bill it.  Every door counts with this function and
    the app's smart flag (through `engine.policy.admission`).
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


def layout(
    total: int, single: int, concat: int, floor: Callable[[int], int], after: Callable[[int], int]
) -> list[int]:
    """Units per segment, filling as the calculator does (rules 3 and 4 of the module docstring).

    `floor(x)` is the last character boundary at or before unit x (`total` from x >= total on);
    `after(b)` the end of the character that starts at boundary b.
    """
    if total <= single:
        return [total]
    overflow = floor(single)  # the first character that did not fit a single SMS starts here
    start = floor(concat)  # the first segment, trimmed to the concatenated limit
    per_segment = [start]
    # The second segment takes the trimmed characters and the one that did not fit, unchecked, and
    # every later segment its first character: whatever else fits, it ends at or after that
    # character's end (which is the next boundary, so only asked for when nothing else fits).
    taken = overflow
    while True:
        end = floor(start + concat)
        if end <= taken:
            end = after(taken)
        per_segment.append(end - start)
        if end >= total:
            return per_segment
        start = taken = end


def _gsm7_info(body: str, replacements: tuple[Replacement, ...]) -> SegmentInfo:
    """Septet layout: an extension character (ESC + code) never straddles two segments."""
    septets = septet_stream(body)
    total = len(septets)
    if total <= GSM7_SINGLE:
        return SegmentInfo(GSM7, 1, total, [total], body, replacements)

    def floor(x: int) -> int:
        if x >= total:
            return total
        return x - 1 if septets[x - 1] == ESC else x

    def after(x: int) -> int:
        return x + 2 if septets[x] == ESC else x + 1

    per_segment = layout(total, GSM7_SINGLE, GSM7_CONCAT, floor, after)
    return SegmentInfo(GSM7, len(per_segment), total, per_segment, body, replacements)


def _ucs2_info(body: str, replacements: tuple[Replacement, ...]) -> SegmentInfo:
    """UTF-16 layout: a grapheme cluster (surrogate pairs included) is never split."""
    # surrogatepass: a lone surrogate in a Python str still counts as the one code unit it is.
    data = body.encode("utf-16-le", "surrogatepass")
    total = len(data) >> 1
    if total <= UCS2_SINGLE:
        return SegmentInfo(UCS2, 1, total, [total], body, replacements)
    bounds = Ucs2Boundaries(data)
    full = (total - 1) // UCS2_CONCAT
    if bounds.all_free(range(UCS2_CONCAT, total, UCS2_CONCAT)):
        # Every 67th unit falls between two characters that join nothing: what `layout` would find.
        per_segment = [UCS2_CONCAT] * full + [total - UCS2_CONCAT * full]
    else:
        per_segment = layout(total, UCS2_SINGLE, UCS2_CONCAT, bounds.floor, bounds.after)
    return SegmentInfo(UCS2, len(per_segment), total, per_segment, body, replacements)
