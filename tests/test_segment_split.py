"""split_message for single-SMS carriers: prefixes, fit, and the character / word / sentence modes."""

from __future__ import annotations

import re

import pytest

from engine.segment import GSM7_EXTENSION, SPLIT_MODES, analyze, split_message

EMOJI = "\U0001f600"
PREFIX = re.compile(r"\((\d+)/(\d+)\) ")


def units(part: str, encoding: str) -> int:
    """Units of `part` in the message's encoding (septets or UTF-16 code units)."""
    if encoding == "GSM-7":
        return len(part) + sum(part.count(char) for char in GSM7_EXTENSION)
    return len(part.encode("utf-16-le")) // 2


def assert_well_formed(body: str, parts: list[str]) -> list[str]:
    """Check prefixes and single-SMS fit; return the parts without their prefixes."""
    encoding = analyze(body).encoding
    limit = 160 if encoding == "GSM-7" else 70
    assert parts
    for part in parts:
        assert units(part, encoding) <= limit, (part, units(part, encoding))
    if len(parts) == 1:
        return parts
    contents = []
    for index, part in enumerate(parts, 1):
        match = PREFIX.match(part)
        assert match is not None, part
        assert (int(match[1]), int(match[2])) == (index, len(parts))
        contents.append(part[match.end() :])
        assert contents[-1]
    return contents


@pytest.mark.parametrize("mode", ["", "words", "CHARACTER", "line", "smart"])
def test_unknown_mode_is_rejected(mode: str) -> None:
    with pytest.raises(ValueError, match="unknown split mode"):
        split_message("hello", mode)


def test_modes_listed() -> None:
    assert SPLIT_MODES == ("character", "word", "sentence")


@pytest.mark.parametrize("mode", SPLIT_MODES)
@pytest.mark.parametrize(
    "body",
    ["", " ", "hello", "a" * 160, "{" * 80, "a" * 158 + "€", "Ж" * 70, EMOJI * 35, "  padded  ", "x" * 159 + " "],
)
def test_body_that_fits_one_sms_is_returned_unchanged(body: str, mode: str) -> None:
    assert split_message(body, mode) == [body]


def test_default_mode_is_character() -> None:
    body = "word " * 60
    assert split_message(body) == split_message(body, "character")


def test_character_mode_gsm7_just_over() -> None:
    parts = split_message("a" * 161)
    assert parts == ["(1/2) " + "a" * 154, "(2/2) " + "a" * 7]


def test_character_mode_ucs2() -> None:
    parts = split_message("Ж" * 100)
    assert parts == ["(1/2) " + "Ж" * 64, "(2/2) " + "Ж" * 36]


def test_character_mode_is_compact_and_keeps_all_text() -> None:
    body = "The quick brown fox jumps over the lazy dog. " * 10
    parts = split_message(body, "character")
    contents = assert_well_formed(body, parts)
    for part in parts[:-1]:
        assert len(part) >= 159  # full but for a dropped space at the cut
    assert "".join(contents).replace(" ", "") == body.replace(" ", "")


def test_extension_chars_are_two_septets_in_a_part() -> None:
    parts = split_message("{" * 100)
    assert parts == ["(1/2) " + "{" * 77, "(2/2) " + "{" * 23]
    # a part never ends with half an escape: 153 septets of room, 'a' + 76 braces = 153
    parts = split_message("a" + "[" * 100)
    assert parts[0] == "(1/2) a" + "[" * 76
    assert_well_formed("a" + "[" * 100, parts)


def test_emoji_never_split_across_parts() -> None:
    body = EMOJI * 40  # 80 UTF-16 units
    parts = split_message(body)
    assert parts == ["(1/2) " + EMOJI * 32, "(2/2) " + EMOJI * 8]
    body = "a" + EMOJI * 40
    parts = split_message(body)
    assert parts[0] == "(1/2) a" + EMOJI * 31  # 6 + 1 + 62 = 69 units: the next pair would not fit
    assert_well_formed(body, parts)


def test_prefix_widens_with_ten_or_more_parts() -> None:
    body = "a" * 2000
    parts = split_message(body)
    contents = assert_well_formed(body, parts)
    assert len(parts) == 14
    assert parts[0].startswith("(1/14) ")
    assert parts[9].startswith("(10/14) ")
    assert len(contents[0]) == 153 and len(contents[9]) == 152
    assert "".join(contents) == body


def test_prefix_widens_to_three_digits() -> None:
    body = "b" * 16000
    parts = split_message(body)
    contents = assert_well_formed(body, parts)
    assert len(parts) >= 100
    assert parts[99].startswith(f"(100/{len(parts)}) ")
    assert "".join(contents) == body


def test_whitespace_at_split_points_is_dropped() -> None:
    body = "a" * 150 + " " * 20 + "b" * 10
    assert split_message(body) == ["(1/2) " + "a" * 150, "(2/2) " + "b" * 10]


def test_whitespace_only_overflow_leaves_one_unprefixed_part() -> None:
    assert split_message("x" * 100 + " " * 100) == ["x" * 100]


def test_leading_whitespace_is_kept() -> None:
    parts = split_message("  " + "a" * 200)
    assert parts[0] == "(1/2)   " + "a" * 152


def test_line_breaks_inside_parts_are_kept() -> None:
    body = "line one\nline two\r\n" * 12
    contents = assert_well_formed(body, split_message(body, "word"))
    assert "line one\nline two\r\nline one" in contents[0]


# --- word mode -------------------------------------------------------------------------------------------


def test_word_mode_never_breaks_words() -> None:
    body = " ".join(f"word{i:03d}" for i in range(60))
    parts = split_message(body, "word")
    contents = assert_well_formed(body, parts)
    words = body.split()
    assert [w for content in contents for w in content.split()] == words
    assert " ".join(contents) == body


def test_word_mode_cuts_at_last_fitting_space() -> None:
    body = "a" * 100 + " " + "b" * 40 + " " + "c" * 40
    assert split_message(body, "word") == ["(1/2) " + "a" * 100 + " " + "b" * 40, "(2/2) " + "c" * 40]
    assert split_message(body, "character")[0] == "(1/2) " + "a" * 100 + " " + "b" * 40 + " " + "c" * 12


def test_word_mode_breaks_a_word_when_the_part_would_be_over_half_empty() -> None:
    body = "a" * 50 + " " + "b" * 300
    parts = split_message(body, "word")
    assert parts == [
        "(1/3) " + "a" * 50 + " " + "b" * 103,
        "(2/3) " + "b" * 154,
        "(3/3) " + "b" * 43,
    ]


def test_word_mode_half_full_threshold() -> None:
    # capacity after "(i/2) " is 154 septets; a word cut leaving exactly 77 is half full: accepted
    body = "a" * 77 + " " + "b" * 100
    assert split_message(body, "word") == ["(1/2) " + "a" * 77, "(2/2) " + "b" * 100]
    # 76 is more than half empty: fill with characters instead
    body = "a" * 76 + " " + "b" * 100
    assert split_message(body, "word") == ["(1/2) " + "a" * 76 + " " + "b" * 77, "(2/2) " + "b" * 23]


def test_word_mode_returns_to_words_after_a_character_fill() -> None:
    body = "x" * 200 + " alpha beta gamma delta epsilon zeta eta theta iota kappa" * 5
    parts = split_message(body, "word")
    contents = assert_well_formed(body, parts)
    assert contents[0] == "x" * 154
    # every later cut falls between words
    for content in contents[1:]:
        assert content.split()[-1] in {
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "zeta",
            "eta",
            "theta",
            "iota",
            "kappa",
        }


def test_word_mode_ucs2() -> None:
    body = " ".join(["слово"] * 30)  # 179 UTF-16 units
    parts = split_message(body, "word")
    contents = assert_well_formed(body, parts)
    assert all(set(content.split()) == {"слово"} for content in contents)
    assert " ".join(contents) == body


# --- sentence mode ---------------------------------------------------------------------------------------


def test_sentence_mode_prefers_sentence_ends() -> None:
    first = "Your appointment with Dr. Smith is confirmed for Tuesday at 10:30 in the main building."
    second = "Please arrive fifteen minutes early and bring your insurance card and a photo ID."
    third = "Reply C to cancel or R to reschedule."
    body = f"{first} {second} {third}"
    parts = split_message(body, "sentence")
    assert parts == [f"(1/2) {first}", f"(2/2) {second} {third}"]
    # word mode would have filled the first part further
    assert split_message(body, "word")[0] != parts[0]


@pytest.mark.parametrize("mark", [",", ".", "!", "?"])
def test_sentence_mode_breaks_after_each_mark(mark: str) -> None:
    body = "a" * 100 + mark + " " + "b b " * 30
    parts = split_message(body, "sentence")
    assert parts[0] == "(1/2) " + "a" * 100 + mark


def test_sentence_mode_breaks_at_line_breaks() -> None:
    body = "Hello team\n" + "x" * 90 + "\n" + "y" * 100
    parts = split_message(body, "sentence")
    assert parts == ["(1/2) Hello team\n" + "x" * 90, "(2/2) " + "y" * 100]


def test_sentence_mode_ignores_marks_inside_numbers() -> None:
    # the first part's 154 septets end inside "1,2|34.56": that comma is no sentence end
    body = "word " * 30 + "1,234.56 due now " * 5
    parts = split_message(body, "sentence")
    contents = assert_well_formed(body, parts)
    assert parts == split_message(body, "word")
    assert contents[0] == ("word " * 30).rstrip()
    assert contents[1].startswith("1,234.56 due")


def test_sentence_mode_falls_back_to_words_then_characters() -> None:
    words = " ".join(["lorem"] * 40)  # no sentence marks at all
    assert split_message(words, "sentence") == split_message(words, "word")
    solid = "z" * 400  # no spaces either
    assert split_message(solid, "sentence") == split_message(solid, "character")


def test_sentence_mode_skips_a_sentence_end_that_leaves_the_part_over_half_empty() -> None:
    body = "Hi, " + " ".join(["word"] * 60)
    parts = split_message(body, "sentence")
    assert parts == split_message(body, "word")
    assert parts[0] != "(1/2) Hi,"


# --- smart encoding in splitting ------------------------------------------------------------------------


def test_split_with_smart_encoding_uses_the_rewritten_body() -> None:
    body = "It’s “fine” — really… " * 10
    plain = split_message(body, "word")
    smart = split_message(body, "word", smart=True)
    assert all(units(part, "UCS-2") <= 70 for part in plain)
    assert len(smart) < len(plain)
    contents = assert_well_formed(analyze(body, smart=True).body, smart)
    assert all("’" not in content and "…" not in content for content in contents)
    assert split_message("It’s short", smart=True) == ["It's short"]


def test_clusters_never_split_across_parts() -> None:
    flag = "\U0001f1eb\U0001f1f7"
    body = "Ж" * 62 + flag + "Ж" * 20  # the flag's 4 units would straddle the part's 64-unit room
    assert split_message(body) == ["(1/2) " + "Ж" * 62, "(2/2) " + flag + "Ж" * 20]
    accents = "e\u0301" * 40  # 80 units of 2-unit clusters
    parts = split_message(accents)
    assert parts == ["(1/2) " + "e\u0301" * 32, "(2/2) " + "e\u0301" * 8]


def test_a_cluster_too_long_for_half_an_sms_is_cut_between_code_points() -> None:
    body = "e" + "\u0301" * 100
    parts = split_message(body)
    assert "".join(part.split(") ", 1)[1] for part in parts) == body
    assert all(len(part.encode("utf-16-le")) // 2 <= 70 for part in parts)
