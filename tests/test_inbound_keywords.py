"""classify / normalize / match_keyword: every stock word and its spellings, the issue's negatives, the edge cases
the module decides (punctuation, Unicode, app words, priorities), and properties against independent oracles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.inbound.keywords import (
    ALL_APPS_OPT_OUT_WORDS,
    AMBIGUOUS_OPT_OUT_WORDS,
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    UNAMBIGUOUS_OPT_OUT_WORDS,
    Classified,
    KeywordIndex,
    KeywordRule,
    classify,
    match_keyword,
    normalize,
    reserved_by_modules,
)

PROPS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Canonical forms, written out by hand (not computed with normalize) so the table checks the normalisation too.
CANONICAL = {
    "STOP": "STOP",
    "STOPALL": "STOPALL",
    "STOP ALL": "STOP ALL",
    "UNSUBSCRIBE": "UNSUBSCRIBE",
    "REVOKE": "REVOKE",
    "OPTOUT": "OPTOUT",
    "OPT OUT": "OPT OUT",
    "RE: STOP": "RE STOP",
    "RE:STOP": "RE STOP",
    "END": "END",
    "QUIT": "QUIT",
    "CANCEL": "CANCEL",
    "Q": "Q",
    "STP": "STP",
    "REMOVE": "REMOVE",
    "TERMINATE": "TERMINATE",
    "START": "START",
    "UNSTOP": "UNSTOP",
    "SUB": "SUB",
    "SUBSCRIBE": "SUBSCRIBE",
    "OPT-IN": "OPT IN",
    "OPT IN": "OPT IN",
    "HELP": "HELP",
    "HLP": "HLP",
    "INFO": "INFO",
}


# The surroundings every whole-message keyword must survive: case, whitespace of several scripts, punctuation,
# smart quotes, symbols.
def spellings(word: str) -> list[str]:
    """Ways people (and phones) write one keyword as the whole message."""
    return [
        word,
        word.lower(),
        word.title(),
        word.swapcase().title().swapcase(),  # sTOP aLL
        f"  {word}  ",
        f"{word.lower()}.",
        f"{word}!!!",
        f"“{word}”",
        f"‘{word.lower()}’",
        f"'{word}'",
        f"\u00a0{word}\u3000",
        f"\t{word}\r\n",
        f"...{word}?!",
        f"({word})",
        f"{word} 🛑",
        f"\ufeff{word}",
    ]


def fields(result: Classified) -> tuple[str, str | None, bool, bool]:
    """Everything classify decides except `rest` (which quotes the body)."""
    return (result.intent, result.keyword, result.all_apps, result.possible_opt_out)


# ---- every stock word, whole message -------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "body"), [(word, body) for word in OPT_OUT_WORDS for body in spellings(word)])
def test_every_opt_out_word_as_the_whole_message_opts_out(word: str, body: str) -> None:
    assert classify(body) == Classified("opt_out", CANONICAL[word], all_apps=word in ALL_APPS_OPT_OUT_WORDS, rest="")


@pytest.mark.parametrize(("word", "body"), [(word, body) for word in OPT_IN_WORDS for body in spellings(word)])
def test_every_opt_in_word_as_the_whole_message_opts_in(word: str, body: str) -> None:
    assert classify(body) == Classified("opt_in", CANONICAL[word])
    assert classify(body, confirmation_pending=True) == Classified("opt_in", CANONICAL[word])


@pytest.mark.parametrize(("word", "body"), [(word, body) for word in HELP_WORDS for body in spellings(word)])
def test_every_help_word_as_the_whole_message_asks_for_help(word: str, body: str) -> None:
    assert classify(body) == Classified("help", CANONICAL[word])


# ---- with text after the word --------------------------------------------------------------------------------------

TRAILING = [
    (" please", "please"),
    (" texting me", "texting me"),
    (", please", "please"),
    ("... please!", "please!"),
    (" — now!", "now!"),
    ("\nme", "me"),
    ("\u2003me", "me"),
    (" 2", "2"),
    (": my number", "my number"),
]


@pytest.mark.parametrize(
    ("word", "tail", "rest"),
    [(word, tail, rest) for word in UNAMBIGUOUS_OPT_OUT_WORDS for tail, rest in TRAILING],
)
def test_unambiguous_opt_out_words_opt_out_with_trailing_text(word: str, tail: str, rest: str) -> None:
    for spelled in (word, word.lower(), word.title()):
        assert classify(spelled + tail) == Classified(
            "opt_out", CANONICAL[word], all_apps=word in ALL_APPS_OPT_OUT_WORDS, rest=rest
        )


@pytest.mark.parametrize(
    ("word", "tail", "rest"),
    [(word, tail, rest) for word in AMBIGUOUS_OPT_OUT_WORDS for tail, rest in TRAILING],
)
def test_ambiguous_opt_out_words_with_trailing_text_are_flagged_messages(word: str, tail: str, rest: str) -> None:
    for spelled in (word, word.lower(), word.title()):
        assert classify(spelled + tail) == Classified("message", CANONICAL[word], possible_opt_out=True, rest=rest)


@pytest.mark.parametrize("word", OPT_IN_WORDS)
def test_opt_in_words_count_only_as_the_whole_message(word: str) -> None:
    body = f"{word.lower()} time?"
    assert classify(body) == Classified("message", rest=body)


@pytest.mark.parametrize("word", ["HLP", "INFO"])
def test_hlp_and_info_with_text_are_messages(word: str) -> None:
    assert classify(f"{word} please") == Classified("message", rest=f"{word} please")


@pytest.mark.parametrize(
    ("body", "rest"),
    [
        ("help me", "me"),
        ("HELP, where is my book?", "where is my book?"),
        ("Help!! I'm locked out", "I'm locked out"),
        ("help help", "help"),
        ("help stop", "stop"),
    ],
)
def test_help_followed_by_text_asks_for_help(body: str, rest: str) -> None:
    assert classify(body) == Classified("help", "HELP", rest=rest)


# ---- the examples and the decided edge cases ---------------------------------------------------------------

CASES: list[tuple[str, Classified]] = [
    # issue: unambiguous words with text opt out
    ("stop please", Classified("opt_out", "STOP", rest="please")),
    ("STOP texting me", Classified("opt_out", "STOP", rest="texting me")),
    ("unsubscribe me", Classified("opt_out", "UNSUBSCRIBE", rest="me")),
    # issue: ambiguous words with text are routed, flagged
    ("Cancel my hold", Classified("message", "CANCEL", possible_opt_out=True, rest="my hold")),
    ("End time for storytime?", Classified("message", "END", possible_opt_out=True, rest="time for storytime?")),
    ("Quit it", Classified("message", "QUIT", possible_opt_out=True, rest="it")),
    ("Remove me from the list", Classified("message", "REMOVE", possible_opt_out=True, rest="me from the list")),
    ("q&a tonight?", Classified("message", "Q", possible_opt_out=True, rest="&a tonight?")),
    # issue: keywords are whole words
    ("Stopping by", Classified("message", rest="Stopping by")),
    ("stopwatch", Classified("message", rest="stopwatch")),
    ("Quite", Classified("message", rest="Quite")),
    ("Endless summer", Classified("message", rest="Endless summer")),
    ("cancelled?", Classified("message", rest="cancelled?")),
    ("Terminated", Classified("message", rest="Terminated")),
    ("unsubscribed", Classified("message", rest="unsubscribed")),
    ("STOP2", Classified("message", rest="STOP2")),
    ("2 STOP", Classified("message", rest="2 STOP")),
    ("xstop", Classified("message", rest="xstop")),
    ("helpful", Classified("message", rest="helpful")),
    ("Helpline", Classified("message", rest="Helpline")),
    ("information", Classified("message", rest="information")),
    ("starting soon", Classified("message", rest="starting soon")),
    ("subway", Classified("message", rest="subway")),
    ("Re: Stopping by", Classified("message", rest="Re: Stopping by")),
    ("RE", Classified("message", rest="RE")),
    ("OPT", Classified("message", rest="OPT")),
    ("opt outside", Classified("message", rest="opt outside")),
    ("STOPALLS", Classified("message", rest="STOPALLS")),
    # only the first words count (MMA: scan the logs for the rest)
    ("Please stop", Classified("message", rest="Please stop")),
    ("don't stop", Classified("message", rest="don't stop")),
    # an apostrophe inside a word belongs to it
    ("STOP's", Classified("message", rest="STOP's")),
    ("stop’s here", Classified("message", rest="stop’s here")),
    ("stop'", Classified("opt_out", "STOP")),
    # the longest keyword wins; STOP ALL means every app
    ("STOP ALL", Classified("opt_out", "STOP ALL", all_apps=True)),
    ("stop all of it", Classified("opt_out", "STOP ALL", all_apps=True, rest="of it")),
    ("stopall now", Classified("opt_out", "STOPALL", all_apps=True, rest="now")),
    ("STOP ALLOWING", Classified("opt_out", "STOP", rest="ALLOWING")),
    ("stop stop stop", Classified("opt_out", "STOP", rest="stop stop")),
    ("Stop by the library", Classified("opt_out", "STOP", rest="by the library")),  # the contract: STOP + text
    # punctuation inside a keyword is a word break
    ("OPT-OUT", Classified("opt_out", "OPT OUT")),
    ("opt_out", Classified("opt_out", "OPT OUT")),
    ("Opt.Out", Classified("opt_out", "OPT OUT")),
    ("opt-out of everything", Classified("opt_out", "OPT OUT", rest="of everything")),
    ("STOP-ALL", Classified("opt_out", "STOP ALL", all_apps=True)),
    ("re stop", Classified("opt_out", "RE STOP")),
    ("Re:  STOP  thanks", Classified("opt_out", "RE STOP", rest="thanks")),
    ("RE:STOP, RE:STOP", Classified("opt_out", "RE STOP", rest="RE:STOP")),
    ("opt-in", Classified("opt_in", "OPT IN")),
    ("Opt In!", Classified("opt_in", "OPT IN")),
    ("stop, please", Classified("opt_out", "STOP", rest="please")),
    ("stop; please", Classified("opt_out", "STOP", rest="please")),
    ("STOP!!! please!!!", Classified("opt_out", "STOP", rest="please!!!")),
    # Unicode whitespace, invisible characters, compatibility forms, smart quotes
    ("STOP\u2003ALL", Classified("opt_out", "STOP ALL", all_apps=True)),
    ("stop\u00a0please", Classified("opt_out", "STOP", rest="please")),
    ("\u3000stop\u3000", Classified("opt_out", "STOP")),
    ("ST\u200bOP", Classified("opt_out", "STOP")),
    ("ST\u00adOP", Classified("opt_out", "STOP")),
    ("\u200d\u2060STOP\u200c", Classified("opt_out", "STOP")),
    ("ＳＴＯＰ", Classified("opt_out", "STOP")),
    ("ｓｔｏｐ　ａｌｌ", Classified("opt_out", "STOP ALL", all_apps=True)),
    ("«stop»", Classified("opt_out", "STOP")),
    ("“Stop” please", Classified("opt_out", "STOP", rest="please")),
    ("*STOP*", Classified("opt_out", "STOP")),
    ("#stop", Classified("opt_out", "STOP")),
    ("🛑 STOP 🛑", Classified("opt_out", "STOP")),
    # accents are kept: a different word
    ("stóp", Classified("message", rest="stóp")),
    ("Sto\u0301p", Classified("message", rest="Sto\u0301p")),
    ("ENDé", Classified("message", rest="ENDé")),
    # nothing to read
    ("", Classified("message")),
    ("   ", Classified("message")),
    ("?!...", Classified("message", rest="?!...")),
    ("\u200b", Classified("message", rest="\u200b")),
    ("🙂", Classified("message", rest="🙂")),
    # YES without a pending confirmation is just a message
    ("yes", Classified("message", rest="yes")),
    ("Y", Classified("message", rest="Y")),
    # priorities: opt-out, then opt-in, then help
    ("STOP HELP", Classified("opt_out", "STOP", rest="HELP")),
    ("stop start", Classified("opt_out", "STOP", rest="start")),
    ("HELP STOP", Classified("help", "HELP", rest="STOP")),
    ("unsubscribe help", Classified("opt_out", "UNSUBSCRIBE", rest="help")),
]


@pytest.mark.parametrize(("body", "expected"), CASES, ids=[repr(body) for body, _ in CASES])
def test_classify_cases(body: str, expected: Classified) -> None:
    assert classify(body) == expected


# ---- double opt-in confirmation ------------------------------------------------------------------------------------

CONFIRM_CASES: list[tuple[str, Classified]] = [
    ("yes", Classified("confirm", "YES")),
    ("YES!", Classified("confirm", "YES")),
    (" Yes. ", Classified("confirm", "YES")),
    ("y", Classified("confirm", "Y")),
    ("Ｙｅｓ", Classified("confirm", "YES")),
    ("yes please", Classified("message", rest="yes please")),
    ("yesterday", Classified("message", rest="yesterday")),
    ("STOP", Classified("opt_out", "STOP")),
    ("yes stop", Classified("message", rest="yes stop")),
    ("start", Classified("opt_in", "START")),
    ("help", Classified("help", "HELP")),
]


@pytest.mark.parametrize(("body", "expected"), CONFIRM_CASES, ids=[repr(body) for body, _ in CONFIRM_CASES])
def test_confirmation_pending(body: str, expected: Classified) -> None:
    assert classify(body, confirmation_pending=True) == expected


# ---- app-defined words ---------------------------------------------------------------------------------------------

APP_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], Classified]] = [
    ("halt", ("HALT",), (), Classified("opt_out", "HALT")),
    ("Halt!", ("halt",), (), Classified("opt_out", "HALT")),
    ("halt the presses", ("HALT",), (), Classified("message", "HALT", possible_opt_out=True, rest="the presses")),
    ("no more", ("NO MORE",), (), Classified("opt_out", "NO MORE")),
    ("no-more", ("no more",), (), Classified("opt_out", "NO MORE")),
    ("no", ("NO MORE",), (), Classified("message", rest="no")),
    ("stop horo", ("STOP HORO",), (), Classified("opt_out", "STOP HORO")),
    ("stop horo please", ("STOP HORO",), (), Classified("opt_out", "STOP HORO", rest="please")),
    ("stop sport", ("STOP HORO",), (), Classified("opt_out", "STOP", rest="sport")),
    ("start", ("START",), (), Classified("opt_out", "START")),  # an app's opt-out word beats stock opt-in
    ("join", (), ("JOIN",), Classified("opt_in", "JOIN")),
    ("join now", (), ("JOIN",), Classified("message", rest="join now")),
    ("stop", (), ("STOP",), Classified("opt_out", "STOP")),  # opt-out before opt-in
    ("cancel order", (), ("CANCEL ORDER",), Classified("opt_in", "CANCEL ORDER")),
    ("help", ("HELP",), (), Classified("opt_out", "HELP")),
    ("help me", ("HELP",), (), Classified("help", "HELP", rest="me")),  # an app word is whole-message only
    ("!!", ("!!", ""), ("", "??"), Classified("message", rest="!!")),  # wordless app words are ignored
    ("yes", (), ("YES",), Classified("opt_in", "YES")),
]


@pytest.mark.parametrize(
    ("body", "opt_out", "opt_in", "expected"), APP_CASES, ids=[repr(case[0]) for case in APP_CASES]
)
def test_app_defined_words(body: str, opt_out: tuple[str, ...], opt_in: tuple[str, ...], expected: Classified) -> None:
    assert classify(body, opt_out_words=opt_out, opt_in_words=opt_in) == expected


def test_app_words_may_be_any_iterable() -> None:
    assert classify("halt", opt_out_words=iter(["halt"])).intent == "opt_out"
    assert classify("halt", opt_out_words=["halt"], opt_in_words=["halt"]).intent == "opt_out"
    assert classify("join", opt_in_words={"join"}).intent == "opt_in"


def test_confirm_before_an_app_opt_in_word() -> None:
    assert classify("yes", opt_in_words=["YES"], confirmation_pending=True) == Classified("confirm", "YES")


# ---- normalize -----------------------------------------------------------------------------------------------------

NORMALIZED = [
    ("  Stop, please! ", "STOP PLEASE"),
    ("re:stop", "RE STOP"),
    ("RE: STOP", "RE STOP"),
    ("opt-in", "OPT IN"),
    ("don't  STOP", "DON'T STOP"),
    ("don’t", "DON'T"),
    ("rock''n", "ROCK N"),
    ("'quoted'", "QUOTED"),
    ("ＳＴＯＰ", "STOP"),
    ("ﬁne", "FINE"),
    ("Straße", "STRASSE"),
    ("ST\u200bOP", "STOP"),
    ("a\u00a0b\u2003c\u3000d\te\nf", "A B C D E F"),
    ("⑴ first", "1 FIRST"),
    ("x²", "X2"),
    ("", ""),
    ("?!", ""),
    ("🙂 hi 🙂", "HI"),
]


@pytest.mark.parametrize(("body", "expected"), NORMALIZED)
def test_normalize(body: str, expected: str) -> None:
    assert normalize(body) == expected


# ---- reserved_by_modules (for validate_keyword / associate_keyword) ------------------------------------------------

RESERVED = [
    *[(word, True) for word in (*OPT_OUT_WORDS, *OPT_IN_WORDS, *HELP_WORDS, "YES", "Y", "yes")],
    ("stop now", True),
    ("STOP-NOW", True),
    ("STOP_PROMO", True),
    ("UNSUBSCRIBE-ALL", True),
    ("HELP DESK", True),
    ("", True),
    ("!!!", True),
    ("CANCEL ORDER", False),  # routed (flagged possible_opt_out), so an app may own it
    ("END OF TERM", False),
    ("INFO DESK", False),
    ("START NOW", False),
    ("JOIN", False),
    ("Stopwatch", False),
    ("YESS", False),
    ("RE", False),
]


@pytest.mark.parametrize(("keyword", "reserved"), RESERVED)
def test_reserved_by_modules(keyword: str, reserved: bool) -> None:
    assert reserved_by_modules(keyword) is reserved


# ---- routing keywords ----------------------------------------------------------------------------------------------

RULES = (
    KeywordRule("JOIN", 1, app_id=1),
    KeywordRule("join now", 0, app_id=2),
    KeywordRule("JOIN NOW PLEASE", 1, app_id=3),
    KeywordRule("Forecast", 1, app_id=4, auto_subscribe=True, tags=("weather",)),
    KeywordRule("surf", 0, app_id=5, start_session=False, auto_response="Surf's up"),
    KeywordRule("book-club", 1, app_id=6, double_opt_in=True),
)

MATCHES: list[tuple[str, int | None]] = [
    ("JOIN", 1),
    ("join", 1),
    ("  Join!  ", 1),
    ("join us", 1),
    ("JOIN, please", 1),
    ("joiner", None),
    ("rejoin", None),
    ("join now", 2),  # exact beats the starts-with JOIN
    ("JOIN NOW!", 2),
    ("join, now", 2),
    ("join now later", 1),  # the exact rule does not match; JOIN does
    ("join now please", 3),  # longest starts-with
    ("join now please, thanks", 3),
    ("forecast Miami, Florida", 4),
    ("FORECAST", 4),
    ("forecasting", None),
    ("surf", 5),
    ("SURF.", 5),
    ("surf today", None),  # exact only
    ("book club", 6),
    ("Book-Club tonight", 6),
    ("bookclub", None),
    ("book", None),
    ("", None),
    ("!!!", None),
    ("hello", None),
]


@pytest.mark.parametrize(("body", "app_id"), MATCHES)
def test_match_keyword(body: str, app_id: int | None) -> None:
    rule = match_keyword(body, RULES)
    assert (rule.app_id if rule else None) == app_id
    assert KeywordIndex(RULES).match(body) == rule


def test_matched_rule_carries_its_fields() -> None:
    rule = match_keyword("forecast Miami", RULES)
    assert rule == KeywordRule("Forecast", 1, app_id=4, auto_subscribe=True, tags=("weather",))
    assert match_keyword("surf", RULES) == KeywordRule("surf", 0, 5, start_session=False, auto_response="Surf's up")


def test_no_rules_and_wordless_rules_never_match() -> None:
    assert match_keyword("anything", []) is None
    assert match_keyword("!!!", [KeywordRule("!!!", 0, 1), KeywordRule("", 1, 2)]) is None


def test_same_reading_first_rule_wins() -> None:
    rules = [KeywordRule("JOIN-NOW", 0, 1), KeywordRule("join now", 0, 2), KeywordRule("JOIN_NOW", 1, 3)]
    assert match_keyword("join now", rules) == rules[0]
    assert match_keyword("join now x", rules) == rules[2]
    assert match_keyword("join now", list(reversed(rules))) == rules[1]


@pytest.mark.parametrize("mode", [2, -1, "1", None])
def test_rule_mode_is_checked(mode: object) -> None:
    with pytest.raises(ValueError, match="mode"):
        KeywordRule("x", mode, 1)  # type: ignore[arg-type]


# ---- properties ----------------------------------------------------------------------------------------------------

# Independent of the implementation: first words of every stock opt-out keyword.
OPT_OUT_FIRST_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "REVOKE",
        "OPTOUT",
        "OPT",
        "RE",
        "END",
        "QUIT",
        "CANCEL",
        "Q",
        "STP",
        "REMOVE",
        "TERMINATE",
    }
)
FILLER = ["please", "me", "my", "hold", "time", "all", "out", "in", "re", "opt", "stopwatch", "x", "yes", "now"]
VOCABULARY = [*OPT_OUT_WORDS, *OPT_IN_WORDS, *HELP_WORDS, "YES", "Y", *FILLER]
SEPARATORS = [" ", "  ", ", ", "\n", ": ", "-", "!", " — ", "\u00a0", "\u3000"]
# Characters that never belong to a word: whitespace of several scripts, punctuation, quotes, symbols, emoji.
SURROUNDING = st.text(
    alphabet=st.sampled_from(" \t\n\r\u00a0\u2003\u3000.,;:!?¡¿-—–…'\"“”‘’«»()[]{}*#@&%/\\|~^+=<>🙂🛑😀\u200b\ufeff"),
    max_size=6,
)
WHITESPACE = st.text(alphabet=st.sampled_from(" \t\n\r\u00a0\u2003\u3000"), max_size=4)
ASCII_LETTERS = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=6
)


@st.composite
def vocabulary_bodies(draw: st.DrawFn) -> str:
    """Bodies made of keywords, keyword look-alikes and filler, with assorted separators."""
    words = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=5))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words) - 1, max_size=len(words) - 1))
    body = words[0]
    for sep, word in zip(seps, words[1:], strict=True):
        body += sep + word
    return body


@st.composite
def case_mixed(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(char.swapcase() if flip else char for char, flip in zip(text, flips, strict=True))


bodies = st.one_of(
    vocabulary_bodies(), st.text(max_size=40), st.text(alphabet=st.sampled_from("stopalSTOP :-'"), max_size=15)
)
app_words = st.lists(st.sampled_from(["HALT", "no more", "STOP HORO", "JOIN", "yes", "CANCEL ORDER", "!!"]), max_size=3)


@PROPS
@given(
    vocabulary_bodies().flatmap(lambda body: st.tuples(st.just(body), case_mixed(body))),
    app_words,
    app_words,
    st.booleans(),
)
def test_case_never_matters(pair: tuple[str, str], opt_out: list[str], opt_in: list[str], pending: bool) -> None:
    body, mixed = pair
    plain = classify(body, opt_out_words=opt_out, opt_in_words=opt_in, confirmation_pending=pending)
    other = classify(
        mixed, opt_out_words=[w.lower() for w in opt_out], opt_in_words=opt_in, confirmation_pending=pending
    )
    assert fields(plain) == fields(other)
    assert plain.rest.upper() == other.rest.upper()
    assert normalize(body) == normalize(mixed)


@PROPS
@given(bodies, SURROUNDING, SURROUNDING, st.booleans())
def test_surrounding_whitespace_and_punctuation_never_matter(body: str, before: str, after: str, pending: bool) -> None:
    assert fields(classify(before + body + after, confirmation_pending=pending)) == fields(
        classify(body, confirmation_pending=pending)
    )
    assert normalize(before + body + after) == normalize(body)


@PROPS
@given(bodies, WHITESPACE, WHITESPACE)
def test_surrounding_whitespace_never_changes_rest(body: str, before: str, after: str) -> None:
    assert classify(before + body + after) == classify(body)


@PROPS
@given(st.sampled_from(UNAMBIGUOUS_OPT_OUT_WORDS).flatmap(case_mixed), st.text(), SURROUNDING, st.booleans())
def test_unambiguous_word_then_anything_opts_out(word: str, text: str, before: str, pending: bool) -> None:
    result = classify(f"{before}{word} {text}", confirmation_pending=pending)
    assert result.intent == "opt_out"
    assert normalize(result.keyword or "").startswith(normalize(word))
    assert not result.possible_opt_out


@PROPS
@given(
    st.sampled_from(AMBIGUOUS_OPT_OUT_WORDS).flatmap(case_mixed),
    st.sampled_from(SEPARATORS),
    ASCII_LETTERS,
    st.text(max_size=20),
)
def test_ambiguous_word_then_text_is_a_flagged_message(word: str, sep: str, first: str, text: str) -> None:
    result = classify(f"{word}{sep}{first}{text}")
    assert (result.intent, result.keyword, result.possible_opt_out) == ("message", word.upper(), True)


@st.composite
def non_keyword_first_words(draw: st.DrawFn) -> str:
    """Letters glued to a keyword ("stopwatch", "xSTOP"), or any letters, but never a keyword's first word."""
    keyword = draw(st.sampled_from([*OPT_OUT_WORDS, *HELP_WORDS]).map(lambda w: w.split()[0].replace(":", "")))
    letters = draw(ASCII_LETTERS)
    word = draw(st.sampled_from([keyword + letters, letters + keyword, letters, letters + keyword + letters]))
    return draw(case_mixed(word))


@PROPS
@given(non_keyword_first_words(), st.sampled_from([*SEPARATORS, ""]), st.text(max_size=30), st.booleans())
def test_no_opt_out_unless_the_first_word_is_one(first: str, sep: str, text: str, pending: bool) -> None:
    body = first + (sep + text if sep else "")
    result = classify(body, confirmation_pending=pending)
    if first.upper() in OPT_OUT_FIRST_WORDS:
        return  # letters alone happened to spell one ("Q", "end")
    assert result.intent != "opt_out"
    assert not result.possible_opt_out


@PROPS
@given(bodies, app_words, app_words, st.booleans())
def test_invariants(body: str, opt_out: list[str], opt_in: list[str], pending: bool) -> None:
    result = classify(body, opt_out_words=opt_out, opt_in_words=opt_in, confirmation_pending=pending)
    normalized = normalize(body)
    assert result.rest in body
    assert result.rest == result.rest.strip()
    if result.intent != "message" or result.possible_opt_out:
        assert result.keyword is not None
    if result.keyword is None:
        assert result.rest == body.strip()
    else:
        assert normalized == result.keyword or normalized.startswith(result.keyword + " ")
        assert (result.rest == "") == (normalized == result.keyword)
    if result.all_apps:
        assert result.intent == "opt_out"
        assert result.keyword in {"STOP ALL", "STOPALL"}
    if result.possible_opt_out:
        assert result.intent == "message"
    if result.intent in ("opt_in", "confirm"):
        assert result.keyword == normalized and result.rest == ""
    if result.intent == "confirm":
        assert pending


@PROPS
@given(bodies, app_words, app_words, st.booleans())
def test_classify_reads_the_normalized_form(body: str, opt_out: list[str], opt_in: list[str], pending: bool) -> None:
    normalized = normalize(body)
    assert normalize(normalized) == normalized

    def run(text: str) -> Classified:
        return classify(text, opt_out_words=opt_out, opt_in_words=opt_in, confirmation_pending=pending)

    assert fields(run(body)) == fields(run(normalized))


@PROPS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_any_text_is_classified(body: str) -> None:
    result = classify(body, opt_out_words=["halt"], opt_in_words=["join"], confirmation_pending=True)
    assert result.intent in ("opt_out", "opt_in", "help", "confirm", "message")
    for word in normalize(body).split():
        assert word == word.upper()
        assert all(char.isalnum() or char == "'" or unicodedata.category(char)[0] == "M" for char in word)


# -- match_keyword against a brute-force oracle

KEYWORDS = ["JOIN", "join now", "JOIN NOW PLEASE", "forecast", "book-club", "book", "a", "a b", "now"]


def oracle(body: str, rules: Iterable[KeywordRule]) -> KeywordRule | None:
    """Exact first (first given wins), else the longest starts-with keyword that is a word-prefix of the body."""
    words = normalize(body).split()
    if not words:
        return None
    rules = list(rules)
    for rule in rules:
        if rule.mode == 0 and normalize(rule.keyword).split() == words:
            return rule
    best: KeywordRule | None = None
    for rule in rules:
        key = normalize(rule.keyword).split()
        longer = best is None or len(key) > len(normalize(best.keyword).split())
        if rule.mode == 1 and key and words[: len(key)] == key and longer:
            best = rule
    return best


rules_strategy = st.lists(
    st.builds(KeywordRule, st.sampled_from(KEYWORDS), st.sampled_from([0, 1]), st.integers(1, 9)), max_size=6
).map(
    # the database keeps keywords unique per SMSC (case-insensitively)
    lambda rules: list({rule.keyword.upper(): rule for rule in rules}.values())
)
keyword_bodies = (
    st.lists(
        st.sampled_from(["join", "now", "please", "forecast", "book", "club", "a", "b", "joiner", "x"]), max_size=5
    )
    .flatmap(
        lambda words: st.tuples(
            st.just(words), st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words))
        )
    )
    .map(lambda pair: "".join(word + sep for word, sep in zip(*pair, strict=True)))
)


@PROPS
@given(keyword_bodies, rules_strategy)
def test_match_keyword_agrees_with_the_oracle(body: str, rules: list[KeywordRule]) -> None:
    assert match_keyword(body, rules) == oracle(body, rules)


@PROPS
@given(
    keyword_bodies.flatmap(lambda body: st.tuples(st.just(body), case_mixed(body))),
    rules_strategy,
    SURROUNDING,
    SURROUNDING,
)
def test_match_keyword_ignores_case_and_surroundings(
    pair: tuple[str, str], rules: list[KeywordRule], before: str, after: str
) -> None:
    body, mixed = pair
    assert match_keyword(before + mixed + after, rules) == match_keyword(body, rules)


@PROPS
@given(st.sampled_from(KEYWORDS), ASCII_LETTERS, st.text(max_size=10))
def test_a_starts_with_keyword_never_matches_inside_a_word(keyword: str, letters: str, text: str) -> None:
    rule = KeywordRule(keyword, 1, app_id=1)
    assert match_keyword(keyword + letters + " " + text, [rule]) is None
    assert match_keyword(keyword + " " + letters + text, [rule]) == rule


def test_normalize_is_idempotent_for_every_bmp_character() -> None:
    """Exhaustive over the BMP, each character between letters (where an apostrophe or a mark would join a word)."""
    chars = "".join(chr(cp) for cp in range(0x10000) if not 0xD800 <= cp < 0xE000)
    for start in range(0, len(chars), 512):
        body = "a".join(chars[start : start + 512])
        once = normalize(body)
        assert normalize(once) == once, start
