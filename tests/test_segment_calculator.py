"""Twilio's segment calculator, case by case: the table these tests check `analyze` against.

Every expected value below was produced by running Twilio's reference calculator, the npm package
`sms-segments-calculator` 1.3.0 (`new SegmentedMessage(body, "auto", smart)`; per-segment units are
`messageSizeInBits()` / 7 or 16), and the smart-encoding table was read from its source
(`src/libs/SmartEncodingMap.ts`).  tests/test_segment_differential.py re-runs the calculator on all
of them when node and the npm registry are available.
"""

from __future__ import annotations

import pytest

from engine.segment import SMART_MAP, analyze, has_unicode, split_message
from engine.segment.graphemes import clusters

FILL = "ж"  # one UTF-16 unit, not GSM, never joins a neighbour: positions are unit offsets

# Grapheme clusters of every kind, with their length in UTF-16 units.
CLUSTERS = {
    "combining2": "e\u0301",  # e + acute: 2
    "combining3": "a\u0308\u0301",  # a + diaeresis + acute: 3
    "combining5": "o\u0301\u0302\u0303\u0304",  # 5
    "emoji": "\U0001f600",  # 😀, one surrogate pair: 2
    "flag": "\U0001f1eb\U0001f1f7",  # 🇫🇷, two regional indicators: 4
    "skin_tone": "\U0001f44d\U0001f3fd",  # 👍🏽: 4
    "pride_flag": "\U0001f3f3\ufe0f\u200d\U0001f308",  # 🏳️‍🌈: 6
    "family": "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # 👨‍👩‍👧: 8
    "keycap": "1\ufe0f\u20e3",  # 1️⃣ (a GSM digit, but the cluster is not): 3
    "hangul_jamo": "\u1100\u1161\u11a8",  # 각 from conjoining jamo: 3
    "devanagari_vowel": "\u0915\u093f",  # कि, consonant + spacing vowel sign: 2
    "conjunct": "\u0915\u094d\u0937",  # क्ष: two clusters there (क् + ष, no rule GB9c): 2 + 1
    "crlf": "\r\n",  # two clusters there (the calculator splits CR LF): 1 + 1
}

# (cluster, FILL units before it, FILL units after it, units per segment): every start position from
# two before "ends exactly at the boundary" to "starts at the boundary", around 66/67 (the end of the
# first segment once trimmed to 67) and 133/134 (the end of the second); 200 units in all.
BOUNDARY_CASES = [
    ('combining2', 64, 134, [67, 67, 66]),
    ('combining2', 65, 133, [67, 67, 66]),
    ('combining2', 66, 132, [66, 67, 67]),
    ('combining2', 67, 131, [67, 67, 66]),
    ('combining2', 131, 67, [67, 67, 66]),
    ('combining2', 132, 66, [67, 67, 66]),
    ('combining2', 133, 65, [67, 66, 67]),
    ('combining2', 134, 64, [67, 67, 66]),
    ('combining3', 63, 134, [67, 67, 66]),
    ('combining3', 64, 133, [67, 67, 66]),
    ('combining3', 65, 132, [65, 67, 67, 1]),
    ('combining3', 66, 131, [66, 67, 67]),
    ('combining3', 67, 130, [67, 67, 66]),
    ('combining3', 130, 67, [67, 67, 66]),
    ('combining3', 131, 66, [67, 67, 66]),
    ('combining3', 132, 65, [67, 65, 67, 1]),
    ('combining3', 133, 64, [67, 66, 67]),
    ('combining3', 134, 63, [67, 67, 66]),
    ('combining5', 61, 134, [67, 67, 66]),
    ('combining5', 62, 133, [67, 67, 66]),
    ('combining5', 63, 132, [63, 67, 67, 3]),
    ('combining5', 64, 131, [64, 67, 67, 2]),
    ('combining5', 65, 130, [65, 67, 67, 1]),
    ('combining5', 66, 129, [66, 67, 67]),
    ('combining5', 67, 128, [67, 67, 66]),
    ('combining5', 128, 67, [67, 67, 66]),
    ('combining5', 129, 66, [67, 67, 66]),
    ('combining5', 130, 65, [67, 63, 67, 3]),
    ('combining5', 131, 64, [67, 64, 67, 2]),
    ('combining5', 132, 63, [67, 65, 67, 1]),
    ('combining5', 133, 62, [67, 66, 67]),
    ('combining5', 134, 61, [67, 67, 66]),
    ('emoji', 64, 134, [67, 67, 66]),
    ('emoji', 65, 133, [67, 67, 66]),
    ('emoji', 66, 132, [66, 67, 67]),
    ('emoji', 67, 131, [67, 67, 66]),
    ('emoji', 131, 67, [67, 67, 66]),
    ('emoji', 132, 66, [67, 67, 66]),
    ('emoji', 133, 65, [67, 66, 67]),
    ('emoji', 134, 64, [67, 67, 66]),
    ('flag', 62, 134, [67, 67, 66]),
    ('flag', 63, 133, [67, 67, 66]),
    ('flag', 64, 132, [64, 67, 67, 2]),
    ('flag', 65, 131, [65, 67, 67, 1]),
    ('flag', 66, 130, [66, 67, 67]),
    ('flag', 67, 129, [67, 67, 66]),
    ('flag', 129, 67, [67, 67, 66]),
    ('flag', 130, 66, [67, 67, 66]),
    ('flag', 131, 65, [67, 64, 67, 2]),
    ('flag', 132, 64, [67, 65, 67, 1]),
    ('flag', 133, 63, [67, 66, 67]),
    ('flag', 134, 62, [67, 67, 66]),
    ('skin_tone', 62, 134, [67, 67, 66]),
    ('skin_tone', 63, 133, [67, 67, 66]),
    ('skin_tone', 64, 132, [64, 67, 67, 2]),
    ('skin_tone', 65, 131, [65, 67, 67, 1]),
    ('skin_tone', 66, 130, [66, 67, 67]),
    ('skin_tone', 67, 129, [67, 67, 66]),
    ('skin_tone', 129, 67, [67, 67, 66]),
    ('skin_tone', 130, 66, [67, 67, 66]),
    ('skin_tone', 131, 65, [67, 64, 67, 2]),
    ('skin_tone', 132, 64, [67, 65, 67, 1]),
    ('skin_tone', 133, 63, [67, 66, 67]),
    ('skin_tone', 134, 62, [67, 67, 66]),
    ('pride_flag', 60, 134, [67, 67, 66]),
    ('pride_flag', 61, 133, [67, 67, 66]),
    ('pride_flag', 62, 132, [62, 67, 67, 4]),
    ('pride_flag', 63, 131, [63, 67, 67, 3]),
    ('pride_flag', 64, 130, [64, 67, 67, 2]),
    ('pride_flag', 65, 129, [65, 67, 67, 1]),
    ('pride_flag', 66, 128, [66, 67, 67]),
    ('pride_flag', 67, 127, [67, 67, 66]),
    ('pride_flag', 127, 67, [67, 67, 66]),
    ('pride_flag', 128, 66, [67, 67, 66]),
    ('pride_flag', 129, 65, [67, 62, 67, 4]),
    ('pride_flag', 130, 64, [67, 63, 67, 3]),
    ('pride_flag', 131, 63, [67, 64, 67, 2]),
    ('pride_flag', 132, 62, [67, 65, 67, 1]),
    ('pride_flag', 133, 61, [67, 66, 67]),
    ('pride_flag', 134, 60, [67, 67, 66]),
    ('family', 58, 134, [67, 67, 66]),
    ('family', 59, 133, [67, 67, 66]),
    ('family', 60, 132, [60, 67, 67, 6]),
    ('family', 61, 131, [61, 67, 67, 5]),
    ('family', 62, 130, [62, 67, 67, 4]),
    ('family', 63, 129, [63, 67, 67, 3]),
    ('family', 64, 128, [64, 67, 67, 2]),
    ('family', 65, 127, [65, 67, 67, 1]),
    ('family', 66, 126, [66, 67, 67]),
    ('family', 67, 125, [67, 67, 66]),
    ('family', 125, 67, [67, 67, 66]),
    ('family', 126, 66, [67, 67, 66]),
    ('family', 127, 65, [67, 60, 67, 6]),
    ('family', 128, 64, [67, 61, 67, 5]),
    ('family', 129, 63, [67, 62, 67, 4]),
    ('family', 130, 62, [67, 63, 67, 3]),
    ('family', 131, 61, [67, 64, 67, 2]),
    ('family', 132, 60, [67, 65, 67, 1]),
    ('family', 133, 59, [67, 66, 67]),
    ('family', 134, 58, [67, 67, 66]),
    ('keycap', 63, 134, [67, 67, 66]),
    ('keycap', 64, 133, [67, 67, 66]),
    ('keycap', 65, 132, [65, 67, 67, 1]),
    ('keycap', 66, 131, [66, 67, 67]),
    ('keycap', 67, 130, [67, 67, 66]),
    ('keycap', 130, 67, [67, 67, 66]),
    ('keycap', 131, 66, [67, 67, 66]),
    ('keycap', 132, 65, [67, 65, 67, 1]),
    ('keycap', 133, 64, [67, 66, 67]),
    ('keycap', 134, 63, [67, 67, 66]),
    ('hangul_jamo', 63, 134, [67, 67, 66]),
    ('hangul_jamo', 64, 133, [67, 67, 66]),
    ('hangul_jamo', 65, 132, [65, 67, 67, 1]),
    ('hangul_jamo', 66, 131, [66, 67, 67]),
    ('hangul_jamo', 67, 130, [67, 67, 66]),
    ('hangul_jamo', 130, 67, [67, 67, 66]),
    ('hangul_jamo', 131, 66, [67, 67, 66]),
    ('hangul_jamo', 132, 65, [67, 65, 67, 1]),
    ('hangul_jamo', 133, 64, [67, 66, 67]),
    ('hangul_jamo', 134, 63, [67, 67, 66]),
    ('devanagari_vowel', 64, 134, [67, 67, 66]),
    ('devanagari_vowel', 65, 133, [67, 67, 66]),
    ('devanagari_vowel', 66, 132, [66, 67, 67]),
    ('devanagari_vowel', 67, 131, [67, 67, 66]),
    ('devanagari_vowel', 131, 67, [67, 67, 66]),
    ('devanagari_vowel', 132, 66, [67, 67, 66]),
    ('devanagari_vowel', 133, 65, [67, 66, 67]),
    ('devanagari_vowel', 134, 64, [67, 67, 66]),
    ('conjunct', 63, 134, [67, 67, 66]),
    ('conjunct', 64, 133, [67, 67, 66]),
    ('conjunct', 65, 132, [67, 67, 66]),
    ('conjunct', 66, 131, [66, 67, 67]),
    ('conjunct', 67, 130, [67, 67, 66]),
    ('conjunct', 130, 67, [67, 67, 66]),
    ('conjunct', 131, 66, [67, 67, 66]),
    ('conjunct', 132, 65, [67, 67, 66]),
    ('conjunct', 133, 64, [67, 66, 67]),
    ('conjunct', 134, 63, [67, 67, 66]),
    ('crlf', 64, 134, [67, 67, 66]),
    ('crlf', 65, 133, [67, 67, 66]),
    ('crlf', 66, 132, [67, 67, 66]),
    ('crlf', 67, 131, [67, 67, 66]),
    ('crlf', 131, 67, [67, 67, 66]),
    ('crlf', 132, 66, [67, 67, 66]),
    ('crlf', 133, 65, [67, 67, 66]),
    ('crlf', 134, 64, [67, 67, 66]),
]


@pytest.mark.parametrize(
    ("cluster", "before", "after", "per_segment"),
    BOUNDARY_CASES,
    ids=[f"{name}@{before}" for name, before, _, _ in BOUNDARY_CASES],
)
def test_cluster_straddling_a_segment_boundary_moves_whole(
    cluster: str, before: int, after: int, per_segment: list[int]
) -> None:
    body = FILL * before + CLUSTERS[cluster] + FILL * after
    info = analyze(body)
    assert info.encoding == "UCS-2"
    assert info.per_segment == per_segment
    assert (info.units, info.segments) == (sum(per_segment), len(per_segment))


def test_boundary_table_covers_every_straddle() -> None:
    for name, cluster in CLUSTERS.items():
        size = len(cluster.encode("utf-16-le")) // 2
        starts = sorted(before for case, before, _, _ in BOUNDARY_CASES if case == name)
        assert starts == [*range(67 - size - 1, 68), *range(134 - size - 1, 135)], name


# (description, body, smart, encoding, units per segment)
SPECIAL_CASES: list[tuple[str, str, bool, str, list[int]]] = [
    ("gsm 160", "a" * 160, False, "GSM-7", [160]),
    ("gsm 161", "a" * 161, False, "GSM-7", [153, 8]),
    ("gsm 306", "a" * 306, False, "GSM-7", [153, 153]),
    ("gsm 307", "a" * 307, False, "GSM-7", [153, 153, 1]),
    ("gsm escape at 151", "a" * 151 + "{" + "a" * 10, False, "GSM-7", [153, 10]),
    ("gsm escape at 152 straddles", "a" * 152 + "{" + "a" * 10, False, "GSM-7", [152, 12]),
    ("gsm escape at 153", "a" * 153 + "{" + "a" * 10, False, "GSM-7", [153, 12]),
    ("gsm escape straddles 305/306", "a" * 305 + "|" + "a", False, "GSM-7", [153, 152, 3]),
    ("gsm escape before 305", "a" * 304 + "|" + "a", False, "GSM-7", [153, 153, 1]),
    ("gsm 80 escapes", "{" * 80, False, "GSM-7", [160]),
    ("gsm 80 escapes + 1", "{" * 80 + "a", False, "GSM-7", [152, 9]),
    ("gsm 153 escapes", "~" * 153, False, "GSM-7", [152, 152, 2]),
    ("gsm crlf is two septets", "line\r\n" * 30, False, "GSM-7", [153, 27]),
    ("issue: flag straddles 66/67", FILL * 65 + CLUSTERS["flag"] + FILL * 65, False, "UCS-2", [65, 67, 2]),
    ("ucs2 extension chars are one unit", FILL + "{" * 70, False, "UCS-2", [67, 4]),
    ("first cluster longer than one sms", "e" + "\u0301" * 80, False, "UCS-2", [0, 81]),
    ("first cluster longer than one sms, then text", "e" + "\u0301" * 80 + FILL * 100, False, "UCS-2",
     [0, 81, 67, 33]),
    ("first cluster of 68 units", "e" + "\u0301" * 67 + FILL * 10, False, "UCS-2", [0, 71, 7]),
    ("long cluster in the middle", FILL * 10 + "e" + "\u0301" * 100 + FILL * 10, False, "UCS-2", [10, 101, 10]),
    (
        "trimmed cluster and the overflowing one both move, unchecked",
        FILL * 30 + "e" + "\u0301" * 38 + FILL + "o" + "\u0301" * 30 + FILL * 5,
        False,
        "UCS-2",
        [30, 71, 5],
    ),
    ("crlf at 66/67 in ucs2 is two clusters", FILL * 66 + "\r\n" + FILL * 10, False, "UCS-2", [67, 11]),
    ("skin tones", CLUSTERS["skin_tone"] * 20, False, "UCS-2", [64, 16]),
    ("flags", CLUSTERS["flag"] * 20, False, "UCS-2", [64, 16]),
    ("odd number of regional indicators", "\U0001f1eb" * 37, False, "UCS-2", [64, 10]),
    ("hindi", "क्षत्रिय नमस्ते दुनिया, आप कैसे हैं? " * 4, False, "UCS-2", [66, 67, 15]),
    ("korean conjoining jamo", CLUSTERS["hangul_jamo"] * 30, False, "UCS-2", [66, 24]),
    ("smart: a curly quote no longer costs two segments", "a" * 158 + "’s", True, "GSM-7", [160]),
    ("smart off: the same body", "a" * 158 + "’s", False, "UCS-2", [67, 67, 26]),
    ("smart: no-break space is two spaces", "a\u00a0" * 54, True, "GSM-7", [153, 9]),
    ("smart: tab is seven spaces", "\t" * 23, True, "GSM-7", [153, 8]),
    ("smart: one half is three characters", "\u00bd" * 54, True, "GSM-7", [153, 9]),
    ("smart: zero width space is deleted", "a" * 160 + "\u200b", True, "GSM-7", [160]),
    ("smart off: zero width space is kept", "a" * 160 + "\u200b", False, "UCS-2", [67, 67, 27]),
    ("smart: replaced even when ucs2 remains", "“Привет” — мир… " * 6, True, "UCS-2", [67, 41]),
    ("smart: zero width joiner is kept", CLUSTERS["family"] + " ok " * 10, True, "UCS-2", [48]),
    ("smart: combining circumflex becomes ^", "e\u0302" * 54, True, "GSM-7", [153, 9]),
    ("smart: full-width lower case is not in the table", "\uff41" * 10, True, "UCS-2", [10]),
    ("smart: line and paragraph separators are one space", "a\u2028b\u2029c", True, "GSM-7", [5]),
    ("smart: every key once", "".join(SMART_MAP), True, "GSM-7", [153, 153, 18]),
]


@pytest.mark.parametrize(
    ("body", "smart", "encoding", "per_segment"),
    [case[1:] for case in SPECIAL_CASES],
    ids=[case[0] for case in SPECIAL_CASES],
)
def test_special_cases(body: str, smart: bool, encoding: str, per_segment: list[int]) -> None:
    info = analyze(body, smart=smart)
    assert info.encoding == encoding
    assert info.per_segment == per_segment
    assert (info.units, info.segments) == (sum(per_segment), len(per_segment))
    assert has_unicode(body, smart=smart) == (encoding == "UCS-2")


def test_issue_example_was_one_segment_short() -> None:
    body = FILL * 65 + CLUSTERS["flag"] + FILL * 65  # 134 units: two segments if the flag could be cut
    assert analyze(body).segments == 3


def test_clusters_as_the_calculator_cuts_them() -> None:
    assert clusters("e\u0301x") == ["e\u0301", "x"]
    assert clusters("a\r\nb") == ["a", "\r", "\n", "b"]
    assert clusters(CLUSTERS["flag"] * 2 + "\U0001f1eb") == [CLUSTERS["flag"]] * 2 + ["\U0001f1eb"]
    assert clusters(CLUSTERS["family"] + CLUSTERS["skin_tone"]) == [CLUSTERS["family"], CLUSTERS["skin_tone"]]
    assert clusters("क्षत्रिय") == ["क्", "ष", "त्", "रि", "य"]  # no GB9c, as in Unicode 10
    assert clusters("\u0600\u0661") == ["\u0600\u0661"]  # a prepended sign joins what follows
    assert clusters("") == []


# Where the calculator's Unicode 10 tables and today's Unicode differ, and no current property can
# tell them apart, we follow today's UAX #29: (description, body, calculator's layout, ours).
DIVERGENCES = [
    ("skin tone after a non-emoji", FILL * 65 + "a\U0001f3fd" + FILL * 10, [66, 12], [65, 13]),
    ("newer emoji with a skin tone", FILL * 65 + "\U0001faf6\U0001f3fd" + FILL * 10, [67, 12], [65, 14]),
    ("newer ZWJ sequence", FILL * 64 + "\U0001f469\u200d\U0001f9b0" + FILL * 10, [67, 12], [64, 15]),
    ("stray ZWJ before an emoji base", FILL * 64 + "x\u200d\U0001f468" + FILL * 10, [64, 14], [66, 12]),
    ("ZWJ before an emoji not in Glue_After_Zwj", FILL * 63 + "\U0001f600\u200d" + CLUSTERS["pride_flag"] + FILL * 10,
     [66, 16], [63, 19]),
    # grapheme-splitter's look-ahead for regional indicators cuts a flag's second mark off
    ("flag followed by two marks", FILL * 62 + CLUSTERS["flag"] + "\u0301\u0301" + FILL * 10, [67, 11], [62, 16]),
]


@pytest.mark.parametrize(
    ("body", "calculator", "ours"), [case[1:] for case in DIVERGENCES], ids=[case[0] for case in DIVERGENCES]
)
def test_known_divergences_from_the_calculator(body: str, calculator: list[int], ours: list[int]) -> None:
    assert analyze(body).per_segment == ours != calculator


def test_split_never_cuts_a_cluster() -> None:
    body = FILL * 62 + CLUSTERS["family"] + FILL * 20  # a part holds 64 units after "(1/2) "
    parts = split_message(body)
    assert parts == ["(1/2) " + FILL * 62, "(2/2) " + CLUSTERS["family"] + FILL * 20]
