"""Encoding detection and segment counting: every billing boundary, straddles, Twilio's cases, smart encoding."""

from __future__ import annotations

import dataclasses

import pytest

from engine.segment import (
    GSM7_CHARSET,
    GSM7_CONCAT,
    GSM7_EXTENSION,
    GSM7_SINGLE,
    SMART_MAP,
    UCS2_CONCAT,
    UCS2_SINGLE,
    SegmentInfo,
    analyze,
    has_unicode,
    is_gsm7,
    non_gsm7_characters,
    smart_replace,
)

DIGITS = "1234567890" * 40
EMOJI = "\U0001f600"  # 😀, one surrogate pair in UTF-16
CYRILLIC = "Ж"  # one UTF-16 unit, not GSM: forces UCS-2 without adding units


def test_limits_are_the_carrier_numbers() -> None:
    assert (GSM7_SINGLE, GSM7_CONCAT, UCS2_SINGLE, UCS2_CONCAT) == (160, 153, 70, 67)


# --- GSM 03.38 table ------------------------------------------------------------------------------

# Written out independently of engine/segment/gsm.py, row by row from the 3GPP TS 23.038 table.
SPEC_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå" + "Δ_ΦΓΛΩΠΨΣΘΞ" + "ÆæßÉ" + " !\"#¤%&'()*+,-./" + "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" + "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
SPEC_EXTENSION = "\f^{}\\[~]|€"


def test_charset_matches_the_spec_table() -> None:
    assert len(SPEC_BASIC) == 127  # 128 code points less ESC
    assert frozenset(SPEC_EXTENSION) == GSM7_EXTENSION
    assert frozenset(SPEC_BASIC + SPEC_EXTENSION) == GSM7_CHARSET


@pytest.mark.parametrize("char", sorted(SPEC_BASIC))
def test_each_basic_char_costs_one_septet(char: str) -> None:
    info = analyze(char * 10)
    assert (info.encoding, info.units) == ("GSM-7", 10)


@pytest.mark.parametrize("char", sorted(SPEC_EXTENSION))
def test_each_extension_char_costs_two_septets(char: str) -> None:
    info = analyze("a" + char)
    assert (info.encoding, info.units) == ("GSM-7", 3)


@pytest.mark.parametrize(
    "char",
    [
        "`",
        "\t",
        "\x1b",
        "\x00",
        "\x7f",
        "ç",
        "á",
        "Á",
        "í",
        "ó",
        "ú",
        "ê",
        "â",
        "ï",
        "e\u0301",
        "\u00a0",
        "’",
        "“",
        "–",
        "…",
        "Ж",
        "中",
        "α",
        EMOJI,
    ],
)
def test_non_gsm_char_forces_ucs2(char: str) -> None:
    info = analyze("plain text " + char)
    assert info.encoding == "UCS-2"
    assert has_unicode("plain text " + char)
    assert not is_gsm7(char)


def test_empty_body_is_one_gsm_segment() -> None:
    info = analyze("")
    assert (info.encoding, info.segments, info.units, info.per_segment) == ("GSM-7", 1, 0, [0])


# --- boundaries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "per_segment"),
    [
        (0, [0]),
        (1, [1]),
        (70, [70]),
        (71, [71]),
        (152, [152]),
        (153, [153]),
        (159, [159]),
        (160, [160]),
        (161, [153, 8]),
        (305, [153, 152]),
        (306, [153, 153]),
        (307, [153, 153, 1]),
        (459, [153, 153, 153]),
        (460, [153, 153, 153, 1]),
    ],
)
def test_gsm7_boundaries(length: int, per_segment: list[int]) -> None:
    info = analyze("a" * length)
    assert info.encoding == "GSM-7"
    assert info.units == length
    assert info.per_segment == per_segment
    assert info.segments == len(per_segment)


@pytest.mark.parametrize(
    ("length", "per_segment"),
    [
        (1, [1]),
        (66, [66]),
        (67, [67]),
        (69, [69]),
        (70, [70]),
        (71, [67, 4]),
        (134, [67, 67]),
        (135, [67, 67, 1]),
        (153, [67, 67, 19]),
        (159, [67, 67, 25]),
        (160, [67, 67, 26]),
        (161, [67, 67, 27]),
        (201, [67, 67, 67]),
        (202, [67, 67, 67, 1]),
        (306, [67, 67, 67, 67, 38]),
        (307, [67, 67, 67, 67, 39]),
    ],
)
def test_ucs2_boundaries(length: int, per_segment: list[int]) -> None:
    info = analyze(CYRILLIC * length)
    assert info.encoding == "UCS-2"
    assert info.units == length
    assert info.per_segment == per_segment
    assert info.segments == len(per_segment)


@pytest.mark.parametrize(
    ("body", "per_segment"),
    [
        # one segment: 160 septets may end with an extension character...
        ("a" * 158 + "{", [160]),
        ("{" * 80, [160]),
        # ...but 161 septets are two segments, however they are made up
        ("a" * 159 + "{", [153, 8]),
        ("{" * 80 + "a", [152, 9]),
        # straddling septets 152/153: the escape never ends a segment
        ("a" * 151 + "{" + "a" * 10, [153, 10]),
        ("a" * 152 + "{" + "a" * 10, [152, 12]),
        ("a" * 153 + "{" + "a" * 10, [153, 12]),
        ("a" * 152 + "€" + "a" * 151, [152, 153]),
        # 306 septets fit two segments only if nothing straddles
        ("a" * 152 + "{" + "a" * 152, [152, 153, 1]),
        ("a" * 151 + "{" + "a" * 153, [153, 153]),
        # second boundary (septets 305/306)
        ("a" * 305 + "|" + "a", [153, 152, 3]),
        ("a" * 304 + "|" + "a", [153, 153, 1]),
        # extension characters only: 76 per segment
        ("~" * 81, [152, 10]),
        ("~" * 152, [152, 152]),
        ("~" * 153, [152, 152, 2]),
    ],
)
def test_extension_char_never_straddles(body: str, per_segment: list[int]) -> None:
    info = analyze(body)
    assert info.encoding == "GSM-7"
    assert info.per_segment == per_segment
    assert info.units == sum(per_segment)


@pytest.mark.parametrize(
    ("body", "per_segment"),
    [
        ("a" * 68 + EMOJI, [70]),
        ("a" * 69 + EMOJI, [67, 4]),
        (EMOJI * 35, [70]),
        (EMOJI * 36, [66, 6]),
        # straddling units 66/67: a surrogate pair never ends a segment half-sent
        (CYRILLIC * 65 + EMOJI + CYRILLIC * 4, [67, 4]),
        (CYRILLIC * 66 + EMOJI + CYRILLIC * 3, [66, 5]),
        (CYRILLIC * 67 + EMOJI + CYRILLIC * 2, [67, 4]),
        # 134 units fit two segments only if nothing straddles
        (EMOJI * 67, [66, 66, 2]),
        (CYRILLIC * 133 + EMOJI, [67, 66, 2]),
        (CYRILLIC * 132 + EMOJI, [67, 67]),
    ],
)
def test_surrogate_pair_never_straddles(body: str, per_segment: list[int]) -> None:
    info = analyze(body)
    assert info.encoding == "UCS-2"
    assert info.per_segment == per_segment
    assert info.units == sum(per_segment)


def test_extension_chars_cost_one_unit_in_ucs2() -> None:
    # Twilio issue #18: in a UCS-2 message ] is one UTF-16 unit, not an escape pair.
    assert analyze(EMOJI + "]" * 68).per_segment == [70]
    assert analyze(EMOJI + "]" * 69).per_segment == [67, 4]


# --- Twilio's message-segment-calculator test table ---------------------------------------------------
# Cases from twilio/message-segment-calculator tests/index.test.js and tests/segments.test.js.
# messageSize is payload bits (7 per septet, 16 per UTF-16 unit); totalSize adds a 48-bit user data
# header per segment when concatenated.

PRIDE_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈: 4 scalars, 6 UTF-16 units
ITALY_FLAG = "\U0001f1ee\U0001f1f9"  # 🇮🇹: 2 scalars, 4 UTF-16 units

TWILIO_CASES = [
    # (description, body, encoding, segments, messageSize, totalSize)
    ("GSM-7 in one segment", DIGITS[:160], "GSM-7", 1, 1120, 1120),
    ("GSM-7 in two segments", DIGITS[:161], "GSM-7", 2, 1127, 1223),
    ("GSM-7 in three segments", DIGITS[:307], "GSM-7", 3, 2149, 2293),
    ("GSM-7 with escape characters in one segment", "{" + DIGITS[1:159], "GSM-7", 1, 1120, 1120),
    ("GSM-7 with escape characters in two segments", "{" + DIGITS[1:160], "GSM-7", 2, 1127, 1223),
    ("UCS-2 message in one segment", "😜" + DIGITS[1:69], "UCS-2", 1, 1120, 1120),
    ("UCS-2 message in two segments", "😜" + DIGITS[1:70], "UCS-2", 2, 1136, 1232),
    ("UCS-2 message in three segments", "😜" + DIGITS[1:134], "UCS-2", 3, 2160, 2304),
    ("UCS-2 two-scalar flag, one segment boundary", ITALY_FLAG + DIGITS[1:67], "UCS-2", 1, 1120, 1120),
    ("UCS-2 two-scalar flag, two segments boundary", ITALY_FLAG + DIGITS[1:68], "UCS-2", 2, 1136, 1232),
    ("UCS-2 four-scalar flag, one segment boundary", PRIDE_FLAG + DIGITS[1:65], "UCS-2", 1, 1120, 1120),
    ("UCS-2 four-scalar flag, two segments boundary", PRIDE_FLAG + DIGITS[1:66], "UCS-2", 2, 1136, 1232),
    *[
        (f"one segment with escape character {char!r}", char + DIGITS[:158], "GSM-7", 1, 1120, 1120)
        for char in "|^€{}[]~\\"
    ],
    *[
        (f"two segments with escape character {char!r}", char + DIGITS[:159], "GSM-7", 2, 1127, 1223)
        for char in "|^€{}[]~\\"
    ],
    ("UCS-2 with GSM extension chars, one segment", "😀" + "]" * 68, "UCS-2", 1, 1120, 1120),
    ("UCS-2 with GSM extension chars, two segments", "😀" + "]" * 69, "UCS-2", 2, 1136, 1232),
    ("triple accent, one segment", "é\u0301\u0301\u0301" + "a" * 66, "UCS-2", 1, 1120, 1120),
    ("triple accent, two segments", "é\u0301\u0301\u0301" + "a" * 67, "UCS-2", 2, 1136, 1232),
    *[(f"70 x {char!r} is one UCS-2 segment", char * 70, "UCS-2", 1, 1120, 1120) for char in "ÁÚúçíÍóÓ"],
    *[(f"71 x {char!r} is two UCS-2 segments", char * 71, "UCS-2", 2, 1136, 1232) for char in "ÁÚúçíÍóÓ"],
]


@pytest.mark.parametrize(
    ("body", "encoding", "segments", "message_bits", "total_bits"),
    [case[1:] for case in TWILIO_CASES],
    ids=[case[0] for case in TWILIO_CASES],
)
def test_twilio_calculator_cases(body: str, encoding: str, segments: int, message_bits: int, total_bits: int) -> None:
    info = analyze(body)
    assert info.encoding == encoding
    assert info.segments == segments
    bits_per_unit = 7 if encoding == "GSM-7" else 16
    assert info.units * bits_per_unit == message_bits
    header_bits = 48 * info.segments if info.segments > 1 else 0
    assert message_bits + header_bits == total_bits
    # every segment's payload plus header fits the 140-octet user data
    assert all(units * bits_per_unit + header_bits // segments <= 1120 for units in info.per_segment)


def test_twilio_segment_layout_gsm7() -> None:
    # segments.test.js: 307 digits -> 153 + 153 + 1, the last segment holding only '7'
    assert analyze(DIGITS[:307]).per_segment == [153, 153, 1]


def test_twilio_segment_layout_ucs2() -> None:
    # segments.test.js: emoji + 133 digits -> 67 + 67 + 1, the last segment holding only '4'
    assert analyze("😜" + DIGITS[1:134]).per_segment == [67, 67, 1]


@pytest.mark.parametrize(("body", "septets"), [("\rabcde\r\n123", 11), ("\nabcde\n\n123\n", 12)])
def test_twilio_line_breaks_are_one_septet_each(body: str, septets: int) -> None:
    info = analyze(body)
    assert (info.encoding, info.units) == ("GSM-7", septets)


def test_twilio_non_gsm_characters() -> None:
    assert non_gsm7_characters("más") == ["á"]
    assert non_gsm7_characters("plain {GSM} text €") == []
    assert non_gsm7_characters("’a’ “b” ’") == ["’", "“", "”"]


# --- SegmentInfo --------------------------------------------------------------------------------------


def test_segment_info_is_a_frozen_slots_dataclass() -> None:
    info = analyze("hello")
    assert dataclasses.is_dataclass(info)
    assert not hasattr(info, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.segments = 2  # type: ignore[misc]
    assert hash(info) == hash(analyze("hello"))
    assert info == analyze("hello")
    assert info.body == "hello"
    assert info.replacements == ()
    assert not info.is_unicode
    assert analyze("Ж").is_unicode
    assert isinstance(info, SegmentInfo)


# --- smart encoding -----------------------------------------------------------------------------------


def test_smart_map_only_maps_non_gsm_to_gsm() -> None:
    for original, replacement in SMART_MAP.items():
        assert not is_gsm7(original), original
        assert is_gsm7(replacement), (original, replacement)


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        ("\u2018", "'"),  # ‘
        ("\u2019", "'"),  # ’
        ("\u201c", '"'),  # “
        ("\u201d", '"'),  # ”
        ("\u00ab", '"'),  # «
        ("\u00bb", '"'),  # »
        ("\u201e", '"'),  # „
        ("\u2013", "-"),  # –
        ("\u2014", "-"),  # —
        ("\u2010", "-"),  # ‐
        ("\u2026", "..."),  # …
        ("\u2022", "-"),  # •
        ("\u203c", "!!"),  # ‼
        ("\u2044", "/"),  # ⁄
        ("\u3001", ","),  # 、
        ("\u3002", "."),  # 。
        ("\uff21", "A"),  # Ａ
        ("\uff01", "!"),  # ！
        ("\uff10", "0"),  # ０
        ("\u200b", ""),  # zero width space
        ("\ufeff", ""),  # byte order mark
        ("\u2060", ""),  # word joiner
    ],
)
def test_smart_map_agrees_with_twilio(original: str, replacement: str) -> None:
    info = analyze(f"x{original}y", smart=True)
    assert info.body == f"x{replacement}y"
    assert info.replacements == ((original, replacement),)
    assert info.encoding == "GSM-7"


@pytest.mark.parametrize(
    ("space", "replacement"),
    [("\u00a0", "  "), ("\u2002", "  "), ("\u3000", "  "), ("\u2001", " "), ("\u2028", " "), ("\t", " " * 7)],
)
def test_smart_unicode_spaces_as_twilio_counts_them(space: str, replacement: str) -> None:
    # Twilio's table: most Unicode spaces become two spaces, EM QUAD and the separators one, TAB seven.
    assert analyze(f"a{space}b", smart=True).body == f"a{replacement}b"


def test_smart_angle_quotes_keep_their_direction() -> None:
    assert analyze("\u2039a\u203a", smart=True).body == "<a>"


def test_smart_rewrites_and_reports_distinct_pairs_in_order() -> None:
    body = "It’s “great” — really… ‘yes’\u00a0• done"
    info = analyze(body, smart=True)
    assert info.encoding == "GSM-7"
    assert info.body == "It's \"great\" - really... 'yes'  - done"
    assert info.replacements == (
        ("’", "'"),
        ("“", '"'),
        ("”", '"'),
        ("—", "-"),
        ("…", "..."),
        ("‘", "'"),
        ("\u00a0", "  "),
        ("•", "-"),
    )
    assert info.units == len(info.body)


def test_smart_saves_segments() -> None:
    body = "a" * 158 + "’s"
    assert analyze(body).segments == 3  # 160 UCS-2 units
    info = analyze(body, smart=True)
    assert (info.encoding, info.segments, info.units) == ("GSM-7", 1, 160)


def test_smart_counts_the_rewritten_body() -> None:
    # … becomes three septets; fullwidth ｛ becomes {, an extension char of two septets
    info = analyze("a…\uff5b", smart=True)
    assert (info.body, info.units) == ("a...{", 6)


def test_smart_replaces_even_when_ucs2_is_needed_anyway() -> None:
    # As Twilio's calculator: the table is applied first, then the encoding chosen.
    body = "It’s “great”… 😀"
    info = analyze(body, smart=True)
    assert (info.encoding, info.body) == ("UCS-2", "It's \"great\"... 😀")
    assert info.replacements == (("’", "'"), ("“", '"'), ("”", '"'), ("…", "..."))
    assert info.units == len(info.body) + 1


def test_smart_leaves_gsm_bodies_alone() -> None:
    body = "Plain 'quotes' - and {braces} €5"
    assert analyze(body, smart=True) == analyze(body)
    assert analyze(body, smart=True).replacements == ()


def test_smart_is_opt_in() -> None:
    body = "It’s here"
    info = analyze(body)
    assert (info.encoding, info.body, info.replacements) == ("UCS-2", body, ())


def test_smart_replace_helper() -> None:
    assert smart_replace("a–b–c") == ("a-b-c", (("–", "-"),))
    assert smart_replace("plain") == ("plain", ())
    assert smart_replace("中’") == ("中'", (("’", "'"),))  # the helper rewrites; analyze decides


def test_has_unicode() -> None:
    assert not has_unicode("")
    assert not has_unicode("Hello {world} €5, Δ ÄÖÜ")
    assert has_unicode("hállo")
    assert has_unicode("It’s")
    assert not has_unicode("It’s", smart=True)
    assert has_unicode("It’s 😀", smart=True)
    assert has_unicode("中", smart=True)
