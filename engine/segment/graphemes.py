"""Grapheme clusters as Twilio's segment calculator counts them, and where UCS-2 segments may end.

Twilio never splits a user-perceived character across two segments: a letter and its combining
marks, a flag, an emoji with its skin tone or ZWJ sequence all move to the next segment together.
Its calculator (npm `sms-segments-calculator` 1.3.0) finds them with `grapheme-splitter`, i.e.
UAX #29 extended grapheme clusters, and then splits every CR LF pair into two.

Here the clusters come from the `regex` module's `\\X` (current UAX #29), with the calculator's two
differences applied on top:

* CR LF is two clusters (the calculator's own special case);
* no Indic conjunct rule: `grapheme-splitter` implements UAX #29 of Unicode 10, before rule GB9c
  (Unicode 15.1) joined consonant + virama + consonant, so क्ष is क् + ष there and here.

What remains different (pinned in tests/test_segment_calculator.py, DIVERGENCES) is what Unicode
10's emoji tables (E_Base, Glue_After_Zwj: gone from Unicode since) cannot be rebuilt from, and a
grapheme-splitter quirk: emoji sequences newer than 2017 (🫶🏽, 👩‍🦰, ❤️‍🔥 are two or three clusters
in the calculator), a skin tone after a non-emoji, a ZWJ before an emoji outside Glue_After_Zwj,
a second combining mark after a flag, and characters whose break property changed since.

`Ucs2Boundaries` answers the two questions the segment layout asks, "the last cluster boundary at
or before this unit" and "where does the cluster starting here end", by looking only around the
asked position: between two characters that can join nothing (no mark, joiner, regional
indicator, prepend or Hangul jamo on either side) there is always a boundary, so `\\X` only runs
over the stretch of joinable characters around a segment end.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Final

import regex

# \X: one extended grapheme cluster (the regex module follows the current Unicode version).
_CLUSTER: Final = regex.compile(r"\X", regex.DOTALL)
# Characters that may join the character before them or after them (UAX #29 GB6-GB13): outside
# these, every position between two characters is a cluster boundary (GB999), and CR, LF and
# controls are clusters of their own (GB4, GB5; CR LF split as the calculator does).
_JOINABLE: Final = regex.compile(
    r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}\p{GCB=Regional_Indicator}"
    r"\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
)
# GB9c: in today's rules a consonant joins the cluster of a preceding virama; not in Unicode 10.
_CONSONANT: Final = regex.compile(r"\p{InCB=Consonant}")
_PREPEND: Final = regex.compile(r"\p{GCB=Prepend}")

# Answers per character, remembered: a dict lookup is several times cheaper than a regex call.
_CACHE_LIMIT: Final = 1 << 16
_caches: dict[regex.Pattern[str], dict[str, bool]] = {_JOINABLE: {}, _CONSONANT: {}, _PREPEND: {}}


def _is(pattern: regex.Pattern[str], char: str) -> bool:
    cache = _caches[pattern]
    known = cache.get(char)
    if known is None:
        known = pattern.match(char) is not None
        if len(cache) < _CACHE_LIMIT:
            cache[char] = known
    return known


def _joinable(char: str) -> bool:
    """Whether `char` may join a neighbour into a cluster (see _JOINABLE)."""
    return _is(_JOINABLE, char)


def utf16_text(body: str) -> str:
    """`body` as UTF-16 sees it: a high + low surrogate pair of code points becomes its character.

    Python strings can hold surrogates (JavaScript's are UTF-16 code units), so count on this form.
    """
    return body.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def cluster_bounds(text: str, start: int = 0, end: int | None = None) -> list[int]:
    """Cluster boundaries (code point indices) of text[start:end], both ends included.

    `start` and `end` must themselves be boundaries (see `Ucs2Boundaries._region`).
    """
    end = len(text) if end is None else end
    bounds = [start]
    for match in _CLUSTER.finditer(text, start, end):
        first, last = match.span()
        if last - first > 1:
            if text[first] == "\r":  # the only multi-character cluster starting with CR is CR LF
                bounds.append(first + 1)
            else:
                bounds.extend(
                    index
                    for index in range(first + 1, last)
                    if _is(_CONSONANT, text[index]) and not _is(_PREPEND, text[index - 1])
                )
        bounds.append(last)
    return bounds


def clusters(body: str) -> list[str]:
    """`body` cut into grapheme clusters exactly as the calculator cuts it (after `utf16_text`)."""
    text = utf16_text(body)
    bounds = cluster_bounds(text)
    return [text[first:last] for first, last in pairwise(bounds)]


class Ucs2Boundaries:
    """Cluster boundaries of a UCS-2 body in UTF-16 code units, computed only where asked.

    Positions are unit offsets (0 .. total).  Asked in increasing order, as the segment layout
    does, the cost is a few regex calls per segment plus `\\X` over the joinable stretches that a
    segment end falls into.
    """

    __slots__ = ("_astral", "_cursor_k", "_cursor_x", "_data", "_region", "_text", "total")

    def __init__(self, data: bytes) -> None:
        """`data` is the body encoded as UTF-16-LE (with surrogatepass)."""
        self._data = data
        self._text = data.decode("utf-16-le", "surrogatepass")
        self.total = len(data) >> 1
        self._astral = len(self._text) != self.total
        self._cursor_x = 0  # a unit offset on a code point boundary...
        self._cursor_k = 0  # ...and its code point index
        self._region: tuple[int, int, list[int]] = (0, 0, [0])

    def all_free(self, offsets: Iterable[int]) -> bool:
        """Whether each unit offset (0 < x < total) falls between two characters that join nothing.

        Such an offset is a cluster boundary whatever the context, so if all of a message's
        67-unit marks are, its layout is plain 67-unit segments.
        """
        data = self._data
        for x in offsets:
            if self._astral:
                # the units on either side, two each when a low / high surrogate says so
                first = 2 * x - (4 if x >= 2 and 0xDC <= data[2 * x - 1] <= 0xDF else 2)
                last = 2 * x + (4 if 0xD8 <= data[2 * x + 1] <= 0xDB else 2)
                pair = data[first:last].decode("utf-16-le", "surrogatepass")
                if len(pair) != 2 or _joinable(pair[0]) or _joinable(pair[1]):
                    return False  # (a surrogate pair straddling x decodes to fewer characters)
            elif _joinable(self._text[x - 1]) or _joinable(self._text[x]):
                return False
        return True

    def floor(self, x: int) -> int:
        """The last cluster boundary at or before unit offset `x` (0 if the first cluster is longer)."""
        if x >= self.total:
            return self.total
        data = self._data
        if 0xD8 <= data[2 * x - 1] <= 0xDB and 0xDC <= data[2 * x + 1] <= 0xDF:
            x -= 1  # x falls inside a surrogate pair: that character starts at x - 1
        k = self._index(x)
        if self._forced(k):
            return x
        bounds = self._bounds_around(k)
        return self._units(max(b for b in bounds if b <= k))

    def after(self, x: int) -> int:
        """The end of the cluster that starts at boundary `x` (< total)."""
        k = self._index(x)
        if self._forced(k + 1):
            return x + (2 if self._text[k] > "\uffff" else 1)
        bounds = self._bounds_around(k + 1)
        return self._units(min(b for b in bounds if b > k))

    def _forced(self, k: int) -> bool:
        """Whether code point index k is a boundary whatever the context (neither side can join)."""
        text = self._text
        if k <= 0 or k >= len(text):
            return True
        return not (_joinable(text[k - 1]) or _joinable(text[k]))

    def _bounds_around(self, k: int) -> list[int]:
        """The cluster boundaries of the joinable stretch containing code point index k (0 < k < n)."""
        first, last, bounds = self._region
        if first <= k <= last:
            return bounds
        text, joinable = self._text, _joinable
        first = last = k  # widen both ways to the nearest position where neither side can join
        while first > 0 and (joinable(text[first - 1]) or joinable(text[first])):
            first -= 1
        end = len(text)
        while last < end and (joinable(text[last - 1]) or joinable(text[last])):
            last += 1
        bounds = cluster_bounds(text, first, last)
        self._region = (first, last, bounds)
        return bounds

    def _index(self, x: int) -> int:
        """Code point index of unit offset x (on a code point boundary)."""
        if not self._astral:
            return x
        cx, ck = self._cursor_x, self._cursor_k
        if x >= cx:
            k = ck + len(self._data[2 * cx : 2 * x].decode("utf-16-le", "surrogatepass"))
        else:
            k = ck - len(self._data[2 * x : 2 * cx].decode("utf-16-le", "surrogatepass"))
        self._cursor_x, self._cursor_k = x, k
        return k

    def _units(self, k: int) -> int:
        """Unit offset of code point index k."""
        if not self._astral:
            return k
        cx, ck = self._cursor_x, self._cursor_k
        if k >= ck:
            x = cx + (len(self._text[ck:k].encode("utf-16-le", "surrogatepass")) >> 1)
        else:
            x = cx - (len(self._text[k:ck].encode("utf-16-le", "surrogatepass")) >> 1)
        self._cursor_x, self._cursor_k = x, k
        return x
