"""Smart encoding: Twilio's SmartEncodingMap, entry by entry.

The table below was read from the source of Twilio's reference calculator, the npm package
`sms-segments-calculator` 1.3.0 (`src/libs/SmartEncodingMap.ts`), and is written here grouped by
replacement, independently of the ordered copy in engine/segment/smart.py;
tests/test_segment_differential.py compares that copy with the package itself, order included.
"""

from __future__ import annotations

import pytest

from engine.segment import SMART_MAP, analyze, is_gsm7

# Twilio's SmartEncodingMap grouped by replacement: {replacement: the characters replaced by it}.
SMART_TABLE = {
    "\"": "\u00ab\u00bb\u201c\u201d\u02ba\u02ee\u201f\u201e\u275d\u275e\u301d\u301e\uff02",
    "'": (
        "\u2018\u2019\u02bb\u02c8\u02bc\u02bd\u02b9\u201b\uff07\u00b4\u02ca`\u02cb\u275b\u275c\u0313"
        "\u0314\ufe10\ufe11"
    ),
    "/": "\u00f7\u29f8\u0337\u0338\u2044\u2215\uff0f",
    "1/4": "\u00bc",
    "1/2": "\u00bd",
    "3/4": "\u00be",
    "\\": "\u29f9\u29f5\u20e5\ufe68\uff3c",
    "_": "\u0332\uff3f\u2017",
    "|": "\u20d2\u20d3\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f",
    "-": "\u23bc\u23bd\u2015\ufe63\uff0d\u2010\u2043\u2014\u2013\u2022",
    "@": "\ufe6b\uff20",
    "$": "\ufe69\uff04",
    "!": "\u01c3\ufe15\ufe57\uff01",
    "#": "\ufe5f\uff03",
    "%": "\ufe6a\uff05",
    "&": "\ufe60\uff06",
    ",": "\u201a\u0326\ufe50\ufe51\uff0c\uff64\u3001",
    "(": "\u2768\u276a\ufe59\uff08\u27ee\u2985",
    ")": "\u2769\u276b\ufe5a\uff09\u27ef\u2986",
    "*": (
        "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b\u273c\u273d\u2743\u2749"
        "\u274a\u274b\u29c6\ufe61\uff0a"
    ),
    "+": "\u02d6\ufe62\uff0b",
    ".": "\u3002\ufe52\uff0e\uff61",
    "0": "\uff10",
    "1": "\uff11",
    "2": "\uff12",
    "3": "\uff13",
    "4": "\uff14",
    "5": "\uff15",
    "6": "\uff16",
    "7": "\uff17",
    "8": "\uff18",
    "9": "\uff19",
    ":": "\u02d0\u02f8\u2982\ua789\ufe13\uff1a",
    ";": "\u204f\ufe14\ufe54\uff1b",
    "<": "\ufe64\uff1c\u2039",
    "=": "\u0347\ua78a\ufe66\uff1d",
    ">": "\ufe65\uff1e\u203a",
    "?": "\ufe16\ufe56\uff1f",
    "A": "\uff21\u1d00",
    "B": "\uff22\u0299",
    "C": "\uff23\u1d04",
    "D": "\uff24\u1d05",
    "E": "\uff25\u1d07",
    "F": "\uff26\ua730",
    "G": "\uff27\u0262",
    "H": "\uff28\u029c",
    "I": "\uff29\u026a",
    "J": "\uff2a\u1d0a",
    "K": "\uff2b\u1d0b",
    "L": "\uff2c\u029f",
    "M": "\uff2d\u1d0d",
    "N": "\uff2e\u0274",
    "O": "\uff2f\u1d0f",
    "P": "\uff30\u1d18",
    "Q": "\uff31",
    "R": "\uff32\u0280",
    "S": "\uff33\ua731",
    "T": "\uff34\u1d1b",
    "U": "\uff35\u1d1c",
    "V": "\uff36\u1d20",
    "W": "\uff37\u1d21",
    "X": "\uff38",
    "Y": "\uff39\u028f",
    "Z": "\uff3a\u1d22",
    "^": "\u02c6\u0302\uff3e\u1dcd",
    "{": "\u2774\ufe5b\uff5b",
    "}": "\u2775\ufe5c\uff5d",
    "[": "\uff3b",
    "]": "\uff3d",
    "~": "\u02dc\u02f7\u0303\u0330\u0334\u223c\uff5e",
    "\u0020\u0020": (
        "\u00a0\u2000\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\u008d\u009f"
        "\u0080\u0090\u009b"
    ),
    "": "\u0010\u0000\u0003\u0004\u0017\u0019\u0011\u0012\u0013\u0014\u2060\u200b\u200c\ufeff",
    "\u0020\u0020\u0020\u0020\u0020\u0020\u0020": "\u0009",
    "!!": "\u203c",
    "\u0020": "\u2028\u2029\u2001",
    "...": "\u2026",
}
SMART_ENTRIES = [(original, replacement) for replacement, originals in SMART_TABLE.items() for original in originals]


def test_smart_table_has_the_calculators_271_entries() -> None:
    assert len(SMART_ENTRIES) == len(dict(SMART_ENTRIES)) == 271
    assert dict(SMART_ENTRIES) == SMART_MAP


@pytest.mark.parametrize(
    ("original", "replacement"), SMART_ENTRIES, ids=[f"U+{ord(original):04X}" for original, _ in SMART_ENTRIES]
)
def test_smart_entry(original: str, replacement: str) -> None:
    assert not is_gsm7(original)
    assert analyze(f"x{original}y").encoding == "UCS-2"
    info = analyze(f"x{original}y", smart=True)
    assert info.body == f"x{replacement}y"
    assert info.encoding == "GSM-7"
    assert info.replacements == ((original, replacement),)
    assert info.units == 2 + len(replacement) + sum(char in "^{}\\[~]|€" for char in replacement)
