"""Classifying an MO body: opt-out, opt-in, help, double opt-in confirmation, and apps' routing keywords.

Pure: stdlib only, no I/O. The module chain (SPEC §4) asks `classify` what a body means and, for the
routing step, `KeywordIndex.match` / `match_keyword` which app keyword it starts with.

How a body is read (one rule for every keyword, stock or app-defined):

* A body is a sequence of **words**: maximal runs of letters, digits and combining marks. Everything
  else — whitespace of any script (no-break, ideographic, tabs, line breaks), punctuation, symbols,
  emoji — only separates words and is otherwise ignored, so ``"Stop!"``, ``"'STOP'"``, ``"stop 🛑"``
  and ``"  STOP.  "`` all read ``STOP``. An apostrophe *between* two word characters belongs to the
  word (``"don't"`` is one word), so ``"STOP's"`` is not ``STOP``.
* Characters are folded before reading: Unicode compatibility forms (NFKC: fullwidth ``ＳＴＯＰ``,
  ligatures), upper case, and every apostrophe look-alike (’ ‘ ʼ ′ ` ´) as ``'``. Invisible format
  characters (zero-width space, soft hyphen, BOM, joiners) are dropped, so ``"ST\\u200bOP"`` is
  ``STOP``. Accents are kept: ``"stóp"`` is not ``STOP``.
* A keyword is matched word by word, so a keyword is always a whole word: ``"stopwatch"``,
  ``"Stopping by"`` and ``"Quite"`` contain no keyword. Keywords are read the same way, which makes
  punctuation inside a keyword a word break: ``OPT-OUT`` = ``OPT OUT``, ``RE:STOP`` = ``RE: STOP`` =
  ``RE STOP``, ``OPT-IN`` = ``OPT IN``, and ``"stop, please"`` is ``STOP`` followed by ``please``.
* `normalize` returns that reading: the folded words joined by single spaces. A keyword's canonical
  form (``Classified.keyword``) is its `normalize` d spelling: ``"STOP ALL"``, ``"RE STOP"``, ``"OPT OUT"``.

What the words mean, in module-chain order (the first that applies wins):

1. **Opt-out.** Any opt-out word (stock or app-defined) as the whole body. Else an *unambiguous*
   stock word (STOP, STOPALL, STOP ALL, UNSUBSCRIBE, REVOKE, OPTOUT, OPT OUT, RE: STOP) followed by
   any text ("STOP texting me"); the longest keyword wins, so "stop all of it" is STOP ALL and, with
   the app word STOP HORO, "stop horo please" is STOP HORO. STOP ALL and STOPALL set ``all_apps``
   (as the longest match: "stop all these texts" opts out of every app). *Ambiguous* words (END,
   QUIT, CANCEL, Q, STP, REMOVE, TERMINATE) and app-defined words followed by text are not opt-outs:
   the body falls through the chain and, if nothing else claims it, is a ``message`` flagged
   ``possible_opt_out`` for review.
2. **Opt-in.** START, UNSTOP, SUB, SUBSCRIBE, OPT-IN, OPT IN or an app-defined word, as the whole
   body only ("Start time?" is a message). Before that, when the caller says a double opt-in
   confirmation is pending, YES or Y (the seed's short form) as the whole body is a ``confirm``;
   otherwise they are ordinary messages.
3. **Help.** HELP, HLP or INFO as the whole body, or HELP followed by text ("help me"; "helpful" is
   a message).
4. Anything else is a ``message``; an empty or punctuation-only body is a ``message`` with no keyword.

Only the first words count: "Please stop" is a message (the MMA asks operators to scan MO logs for
such attempts; ``possible_opt_out`` marks the ones that start with an ambiguous word).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ALL_APPS_OPT_OUT_WORDS",
    "AMBIGUOUS_OPT_OUT_WORDS",
    "CONFIRM_WORDS",
    "EXACT",
    "HELP_PREFIX_WORDS",
    "HELP_WORDS",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "STARTS_WITH",
    "UNAMBIGUOUS_OPT_OUT_WORDS",
    "Classified",
    "Intent",
    "KeywordIndex",
    "KeywordMode",
    "KeywordRule",
    "classify",
    "match_keyword",
    "normalize",
    "reserved_by_modules",
]

Intent = Literal["opt_out", "opt_in", "help", "confirm", "message"]
KeywordMode = Literal[0, 1]
EXACT: Final = 0  # Carousel's "Matches exactly"
STARTS_WITH: Final = 1  # Carousel's "Starts with"

# Stock vocabularies, spelled as SPEC §4 lists them (matching uses their `normalize`d form).
UNAMBIGUOUS_OPT_OUT_WORDS: Final = (
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
    "RE: STOP",
    "RE:STOP",
)
AMBIGUOUS_OPT_OUT_WORDS: Final = ("END", "QUIT", "CANCEL", "Q", "STP", "REMOVE", "TERMINATE")
OPT_OUT_WORDS: Final = UNAMBIGUOUS_OPT_OUT_WORDS + AMBIGUOUS_OPT_OUT_WORDS
ALL_APPS_OPT_OUT_WORDS: Final = ("STOP ALL", "STOPALL")  # every app on the shared SMSC
OPT_IN_WORDS: Final = ("START", "UNSTOP", "SUB", "SUBSCRIBE", "OPT-IN", "OPT IN")
CONFIRM_WORDS: Final = ("YES", "Y")  # only while a double opt-in confirmation is pending
HELP_WORDS: Final = ("HELP", "HLP", "INFO")  # as the whole body
HELP_PREFIX_WORDS: Final = ("HELP",)  # also when text follows

_APOSTROPHES: Final = frozenset("'\u2018\u2019\u201b\u02bc\u2032\uff07`\u00b4")
# What `rest` loses at its start: whitespace, separating punctuation, what closes a quoted keyword ("“Stop” please"),
# invisible characters.
_REST_LEAD: Final = re.compile(r"^[\s,.;:!?…\-\u2010-\u2015\"'’”»›)\]}\u200b-\u200d\u2060\ufeff]+")

Words = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # folded (upper case, NFKC)
    start: int  # index of its first character in the body
    end: int  # index after its last character in the body


@functools.lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """One body character as read: NFKC, upper case, apostrophes unified, invisible format characters dropped."""
    if char.isascii():
        return "'" if char == "`" else char.upper()
    folded = unicodedata.normalize("NFKC", char).upper()  # "ŉ" is "ʼN": unify the apostrophes it yields too
    return "".join("'" if c in _APOSTROPHES else c for c in folded if unicodedata.category(c) != "Cf")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or unicodedata.category(char)[0] == "M"


def _words(body: str) -> list[_Word]:
    """The words of a body with their positions in it (see the module docstring for what a word is)."""
    words: list[_Word] = []
    current: list[str] = []
    start = end = 0
    apostrophe = False  # an apostrophe right after the current word, kept only if a word character follows
    for index, char in enumerate(body):
        for folded in _fold(char):
            if _is_word_char(folded):
                if not current:
                    start = index
                elif apostrophe:
                    current.append("'")
                apostrophe = False
                current.append(folded)
                end = index + 1
            elif folded == "'" and current and not apostrophe:
                apostrophe = True
            else:
                if current:
                    words.append(_Word("".join(current), start, end))
                    current = []
                apostrophe = False
    if current:
        words.append(_Word("".join(current), start, end))
    return words


def _key(text: str) -> Words:
    return tuple(word.text for word in _words(text))


def normalize(body: str) -> str:
    """The body as the keyword matcher reads it: folded words joined by single spaces ("" when it has none).

    ``normalize("  Stop, please! ")`` is ``"STOP PLEASE"``; ``normalize("re:stop")`` is ``"RE STOP"``.
    Idempotent, and `classify` / `match_keyword` give the same answer for a body and its normalized form.
    """
    return " ".join(_key(body))


def _rest(body: str, words: list[_Word], count: int) -> str:
    """The body after its first `count` words, without the separators that follow the keyword."""
    if not count:
        return body.strip()
    tail = body[words[count - 1].end :]
    return _REST_LEAD.sub("", tail).strip()


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """Keyword keys (tuples of words) for one combination of app-defined words."""

    opt_out: frozenset[Words]  # any of these as the whole body opts out
    unambiguous: frozenset[Words]  # these also opt out with text after them
    possible: frozenset[Words]  # these with text after them flag possible_opt_out
    opt_in: frozenset[Words]
    longest_opt_out: int


def _keys(words: Iterable[str]) -> frozenset[Words]:
    return frozenset(key for key in map(_key, words) if key)


_UNAMBIGUOUS: Final = _keys(UNAMBIGUOUS_OPT_OUT_WORDS)
_AMBIGUOUS: Final = _keys(AMBIGUOUS_OPT_OUT_WORDS)
_ALL_APPS: Final = _keys(ALL_APPS_OPT_OUT_WORDS)
_OPT_IN: Final = _keys(OPT_IN_WORDS)
_CONFIRM: Final = _keys(CONFIRM_WORDS)
_HELP: Final = _keys(HELP_WORDS)
_HELP_PREFIX: Final = _keys(HELP_PREFIX_WORDS)


@functools.lru_cache(maxsize=1024)
def _vocabulary(opt_out_words: tuple[str, ...], opt_in_words: tuple[str, ...]) -> _Vocabulary:
    app_opt_out = _keys(opt_out_words)
    opt_out = _UNAMBIGUOUS | _AMBIGUOUS | app_opt_out
    return _Vocabulary(
        opt_out=opt_out,
        unambiguous=_UNAMBIGUOUS,
        possible=(_AMBIGUOUS | app_opt_out) - _UNAMBIGUOUS,
        opt_in=_OPT_IN | _keys(opt_in_words),
        longest_opt_out=max(map(len, opt_out)),
    )


def _longest_prefix(key: Words, keys: frozenset[Words], longest: int) -> int:
    """Length of the longest keyword in `keys` that `key` starts with and that leaves text after it; 0 if none."""
    for length in range(min(longest, len(key) - 1), 0, -1):
        if key[:length] in keys:
            return length
    return 0


@dataclass(frozen=True, slots=True)
class Classified:
    """What an MO body means to the module chain.

    ``keyword`` is the matched keyword in canonical (`normalize` d) form, or None when no keyword is
    involved; for a ``possible_opt_out`` message it is the ambiguous opt-out word the body starts with.
    ``rest`` is the text after the keyword (separators after the keyword and surrounding whitespace
    removed, trailing punctuation kept: "help where is it?" → "where is it?"); for a message without
    a keyword, the whole body with surrounding whitespace removed.
    """

    intent: Intent
    keyword: str | None = None
    all_apps: bool = False  # STOP ALL / STOPALL: opt out of every app on the shared SMSC
    possible_opt_out: bool = False  # a message starting with an ambiguous opt-out word; route it, flag it
    rest: str = ""


def classify(
    body: str,
    *,
    opt_out_words: Iterable[str] = (),
    opt_in_words: Iterable[str] = (),
    confirmation_pending: bool = False,
) -> Classified:
    """What an MO body asks for: opt_out, opt_in, help, confirm (double opt-in YES) or an ordinary message.

    `opt_out_words` / `opt_in_words` are the app's own keywords, added to the stock ones and matched
    as the whole body only; `confirmation_pending` makes YES / Y a ``confirm``. Never raises.
    """
    vocabulary = _vocabulary(tuple(opt_out_words), tuple(opt_in_words))
    words = _words(body)
    key = tuple(word.text for word in words)
    if not key:
        return Classified("message", rest=body.strip())
    if key in vocabulary.opt_out:
        return Classified("opt_out", " ".join(key), all_apps=key in _ALL_APPS)
    length = _longest_prefix(key, vocabulary.unambiguous, vocabulary.longest_opt_out)
    if length:
        # An app word extending the stock one ("STOP HORO" in "stop horo please") names the program better.
        length = max(length, _longest_prefix(key, vocabulary.opt_out, vocabulary.longest_opt_out))
        keyword = key[:length]
        return Classified("opt_out", " ".join(keyword), all_apps=keyword in _ALL_APPS, rest=_rest(body, words, length))
    if confirmation_pending and key in _CONFIRM:
        return Classified("confirm", " ".join(key))
    if key in vocabulary.opt_in:
        return Classified("opt_in", " ".join(key))
    if key in _HELP:
        return Classified("help", " ".join(key))
    length = _longest_prefix(key, _HELP_PREFIX, 1)
    if length:
        return Classified("help", " ".join(key[:length]), rest=_rest(body, words, length))
    length = _longest_prefix(key, vocabulary.possible, vocabulary.longest_opt_out)
    if length:
        return Classified("message", " ".join(key[:length]), possible_opt_out=True, rest=_rest(body, words, length))
    return Classified("message", rest=body.strip())


def reserved_by_modules(keyword: str) -> bool:
    """Whether the module chain would take a body equal to `keyword`, or starting with it, before routing.

    For keyword validation (`associate_keyword`): such a keyword could never route to an app. That is a
    stock opt-out / opt-in / help / confirmation word, or anything starting with an unambiguous opt-out
    word or HELP ("STOP-NOW", "HELP DESK"). A keyword with no words at all is reserved too (it can never match).
    """
    key = _key(keyword)
    if not key or key in _CONFIRM:
        return True
    return classify(keyword).intent != "message"


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """An app's routing keyword on an SMSC. The matcher reads only `keyword` and `mode`.

    mode 0 (`EXACT`): the body is the keyword; mode 1 (`STARTS_WITH`): the body's first words are the
    keyword ("FORECAST" matches "Forecast Miami, Florida", not "Forecasting"). The other fields are
    carried for the routing step: who gets the message and what happens on a match.
    """

    keyword: str
    mode: KeywordMode
    app_id: int
    auto_subscribe: bool = False
    tags: tuple[str, ...] = ()  # auto_subscribe_tags
    double_opt_in: bool = False  # auto-subscribe only after the phone confirms with YES
    start_session: bool = True  # False: Carousel's "Don't start session"
    auto_response: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in (EXACT, STARTS_WITH):
            raise ValueError(f"keyword mode must be 0 (exact) or 1 (starts with), not {self.mode!r}")


class KeywordIndex:
    """The keywords of one SMSC, indexed for matching in O(words of the keyword) per body.

    Rules whose keyword has no words never match. Keywords are unique per SMSC case-insensitively in
    the database, but two spellings can still read the same ("JOIN-NOW", "JOIN NOW"): then the first
    rule given (of that mode) wins, so callers pass rules in a stable order (e.g. by id, oldest first).
    """

    __slots__ = ("_exact", "_longest", "_starts_with")

    def __init__(self, rules: Iterable[KeywordRule]) -> None:
        self._exact: dict[Words, KeywordRule] = {}
        self._starts_with: dict[Words, KeywordRule] = {}
        for rule in rules:
            key = _key(rule.keyword)
            if key:
                table = self._exact if rule.mode == EXACT else self._starts_with
                table.setdefault(key, rule)
        self._longest = max(map(len, self._starts_with), default=0)

    def match(self, body: str) -> KeywordRule | None:
        """The rule a body selects: an exact match first, else the longest starts-with keyword; None if none."""
        key = _key(body)
        if not key:
            return None
        exact = self._exact.get(key)
        if exact is not None:
            return exact
        for length in range(min(self._longest, len(key)), 0, -1):
            rule = self._starts_with.get(key[:length])
            if rule is not None:
                return rule
        return None


def match_keyword(body: str, keywords: Iterable[KeywordRule]) -> KeywordRule | None:
    """The routing keyword a body selects among `keywords` (see `KeywordIndex.match`); builds the index each call."""
    return KeywordIndex(keywords).match(body)
