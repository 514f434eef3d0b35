"""Smart encoding: GSM-7 stand-ins for look-alike characters that would otherwise force UCS-2.

One curly quote in a 160-character message turns 1 segment into 3 (UCS-2 holds 70), so the
engine can optionally swap such characters for their plain GSM equivalents and report the swap.
The table follows Twilio's Smart Encoding list (and its open-source segment calculator) for the
common cases, with a few deliberate differences: ‹ › keep their direction, Unicode spaces become
one space (line/paragraph separators a line feed), and invisible format characters are dropped.
"""

from __future__ import annotations

from typing import Final

Replacement = tuple[str, str]


def _fullwidth_ascii() -> dict[str, str]:
    """Fullwidth forms U+FF01-U+FF5E map one-to-one onto ASCII ! .. ~ (backtick is not GSM)."""
    table = {chr(code): chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)}
    table["\uff40"] = "'"  # FULLWIDTH GRAVE ACCENT: ` itself is not in GSM-7
    return table


_QUOTES: Final = {
    # double quotes
    "\u00ab": '"',  # « LEFT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u00bb": '"',  # » RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u201c": '"',  # “ LEFT DOUBLE QUOTATION MARK
    "\u201d": '"',  # ” RIGHT DOUBLE QUOTATION MARK
    "\u201e": '"',  # „ DOUBLE LOW-9 QUOTATION MARK
    "\u201f": '"',  # ‟ DOUBLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2033": '"',  # ″ DOUBLE PRIME
    "\u2036": '"',  # ‶ REVERSED DOUBLE PRIME
    "\u02ba": '"',  # ʺ MODIFIER LETTER DOUBLE PRIME
    "\u02ee": '"',  # ˮ MODIFIER LETTER DOUBLE APOSTROPHE
    "\u275d": '"',  # ❝ HEAVY DOUBLE TURNED COMMA QUOTATION MARK ORNAMENT
    "\u275e": '"',  # ❞ HEAVY DOUBLE COMMA QUOTATION MARK ORNAMENT
    "\u301d": '"',  # 〝 REVERSED DOUBLE PRIME QUOTATION MARK
    "\u301e": '"',  # 〞 DOUBLE PRIME QUOTATION MARK
    # single quotes and apostrophes
    "\u2018": "'",  # ‘ LEFT SINGLE QUOTATION MARK
    "\u2019": "'",  # ’ RIGHT SINGLE QUOTATION MARK
    "\u201a": "'",  # ‚ SINGLE LOW-9 QUOTATION MARK
    "\u201b": "'",  # ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2032": "'",  # ′ PRIME
    "\u2035": "'",  # ‵ REVERSED PRIME
    "\u02b9": "'",  # ʹ MODIFIER LETTER PRIME
    "\u02bb": "'",  # ʻ MODIFIER LETTER TURNED COMMA
    "\u02bc": "'",  # ʼ MODIFIER LETTER APOSTROPHE
    "\u02bd": "'",  # ʽ MODIFIER LETTER REVERSED COMMA
    "\u02c8": "'",  # ˈ MODIFIER LETTER VERTICAL LINE
    "\u02ca": "'",  # ˊ MODIFIER LETTER ACUTE ACCENT
    "\u02cb": "'",  # ˋ MODIFIER LETTER GRAVE ACCENT
    "\u00b4": "'",  # ´ ACUTE ACCENT
    "\u0060": "'",  # ` GRAVE ACCENT (ASCII, but not in GSM-7)
    "\u275b": "'",  # ❛ HEAVY SINGLE TURNED COMMA QUOTATION MARK ORNAMENT
    "\u275c": "'",  # ❜ HEAVY SINGLE COMMA QUOTATION MARK ORNAMENT
    "\u2039": "<",  # ‹ SINGLE LEFT-POINTING ANGLE QUOTATION MARK
    "\u203a": ">",  # › SINGLE RIGHT-POINTING ANGLE QUOTATION MARK
}

_DASHES_AND_BULLETS: Final = {
    "\u2010": "-",  # ‐ HYPHEN
    "\u2011": "-",  # ‑ NON-BREAKING HYPHEN
    "\u2012": "-",  # ‒ FIGURE DASH
    "\u2013": "-",  # – EN DASH
    "\u2014": "-",  # — EM DASH
    "\u2015": "-",  # ― HORIZONTAL BAR
    "\u2212": "-",  # − MINUS SIGN
    "\u2e3a": "-",  # ⸺ TWO-EM DASH
    "\u2e3b": "-",  # ⸻ THREE-EM DASH
    "\ufe58": "-",  # ﹘ SMALL EM DASH
    "\ufe63": "-",  # ﹣ SMALL HYPHEN-MINUS
    "\u2022": "-",  # • BULLET
    "\u2023": "-",  # ‣ TRIANGULAR BULLET
    "\u2043": "-",  # ⁃ HYPHEN BULLET
    "\u2219": "-",  # ∙ BULLET OPERATOR
    "\u25e6": "-",  # ◦ WHITE BULLET
    "\u2026": "...",  # … HORIZONTAL ELLIPSIS
    "\u2025": "..",  # ‥ TWO DOT LEADER
    "\u203c": "!!",  # ‼ DOUBLE EXCLAMATION MARK
    "\u2047": "??",  # ⁇ DOUBLE QUESTION MARK
    "\u2044": "/",  # ⁄ FRACTION SLASH
    "\u2215": "/",  # ∕ DIVISION SLASH
    "\u2217": "*",  # ∗ ASTERISK OPERATOR
    "\u3001": ",",  # 、 IDEOGRAPHIC COMMA
    "\u3002": ".",  # 。 IDEOGRAPHIC FULL STOP
    "\uff61": ".",  # ｡ HALFWIDTH IDEOGRAPHIC FULL STOP
    "\uff64": ",",  # ､ HALFWIDTH IDEOGRAPHIC COMMA
    "\u2206": "Δ",  # ∆ INCREMENT (looks like GSM's Greek capital delta)
    "\u2126": "Ω",  # Ω OHM SIGN (looks like GSM's Greek capital omega)
}

_SPACES: Final = {
    "\t": " ",  # CHARACTER TABULATION (not in GSM-7)
    "\u00a0": " ",  # NO-BREAK SPACE
    "\u1680": " ",  # OGHAM SPACE MARK
    **{chr(code): " " for code in range(0x2000, 0x200B)},  # EN QUAD .. HAIR SPACE
    "\u202f": " ",  # NARROW NO-BREAK SPACE
    "\u205f": " ",  # MEDIUM MATHEMATICAL SPACE
    "\u3000": " ",  # IDEOGRAPHIC SPACE
    "\u0085": "\n",  # NEXT LINE
    "\u2028": "\n",  # LINE SEPARATOR
    "\u2029": "\n",  # PARAGRAPH SEPARATOR
    # invisible format characters: nothing to show, so nothing to send
    "\u00ad": "",  # SOFT HYPHEN
    "\u200b": "",  # ZERO WIDTH SPACE
    "\u200c": "",  # ZERO WIDTH NON-JOINER
    "\u200d": "",  # ZERO WIDTH JOINER
    "\u2060": "",  # WORD JOINER
    "\ufeff": "",  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
}

SMART_MAP: Final[dict[str, str]] = {**_fullwidth_ascii(), **_QUOTES, **_DASHES_AND_BULLETS, **_SPACES}
_SMART_TABLE: Final = str.maketrans(SMART_MAP)


def smart_replace(body: str) -> tuple[str, tuple[Replacement, ...]]:
    """Apply the look-alike table: the rewritten body and the distinct (original, replacement) pairs.

    Pairs come in order of first appearance.  This does not decide whether the rewrite is worth it;
    `analyze(..., smart=True)` keeps the original unless the result is all GSM-7.
    """
    rewritten = body.translate(_SMART_TABLE)
    if rewritten == body:
        return body, ()
    pairs = tuple((char, SMART_MAP[char]) for char in dict.fromkeys(body) if char in SMART_MAP)
    return rewritten, pairs
