"""GSM 03.38 tables and the segment limits carriers bill by (the single source of truth for both)."""

from __future__ import annotations

import re
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]
GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

# One SMS carries 140 octets of user data: 160 septets or 70 UTF-16 code units.  A concatenated
# message spends 6 octets per segment on the user data header, leaving 153 septets / 67 code units.
GSM7_SINGLE: Final = 160
GSM7_CONCAT: Final = 153
UCS2_SINGLE: Final = 70
UCS2_CONCAT: Final = 67

# GSM 03.38 default alphabet, in code order 0x00-0x7F.  0x1B (ESC) is left out: it is the escape to
# the extension table, not a character a message can contain.  0x09 is the capital Ç, as in the
# Unicode consortium's GSM0338 mapping (and Twilio's calculator); the lower-case ç is not GSM.
GSM7_BASIC_CHARS: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION_CHARS: Final = "\f^{}\\[~]|€"

GSM7_BASIC: Final = frozenset(GSM7_BASIC_CHARS)
GSM7_EXTENSION: Final = frozenset(GSM7_EXTENSION_CHARS)
GSM7_CHARSET: Final = GSM7_BASIC | GSM7_EXTENSION

# The escape septet, used to expand a body into its septet stream (see septet_stream).
ESC: Final = "\x1b"

# A regex character class scans a str in C, far faster than a per-character Python loop.
_NON_GSM7_RE: Final = re.compile("[^" + re.escape(GSM7_BASIC_CHARS + GSM7_EXTENSION_CHARS) + "]")
_ESCAPES: Final = tuple((char, ESC + char) for char in GSM7_EXTENSION_CHARS)


def is_gsm7(body: str) -> bool:
    """True when every character of `body` is in the GSM-7 basic or extension table."""
    return _NON_GSM7_RE.search(body) is None


def non_gsm7_characters(body: str) -> list[str]:
    """The distinct characters that force `body` into UCS-2, in order of first appearance."""
    return list(dict.fromkeys(_NON_GSM7_RE.findall(body)))


def septet_stream(body: str) -> str:
    """`body` with ESC before each extension character: one str character per septet sent.

    Only meaningful for GSM-7 bodies.  Its length is the septet count, and an ESC at the last
    position of a segment marks an extension character that would straddle the boundary.
    """
    for char, escaped in _ESCAPES:
        if char in body:
            body = body.replace(char, escaped)
    return body
