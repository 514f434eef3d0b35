"""The fast lane's header reading decides exactly as the regex it replaced.

``_Lane._framing`` reads the lane's headers line by line; the reference is the regex it used before
(``_FIELDS_REGEX`` below), on any head, well-formed or not.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.httpserver.fastlane import _FORM_TYPES, _HEADERS, MAX_BODY, MAX_HEAD, _Lane

_FIELDS_REGEX = re.compile(rb"\r\n(content-length|content-type|connection|transfer-encoding|content-encoding|expect"
                           rb"|upgrade):[ \t]*([^\r\n]*?)[ \t]*(?=\r\n|\Z)")


def framing_reference(head: bytes, low: bytes, line_end: int) -> tuple[int, bool] | None:
    """_Lane._framing as it was, with the regex."""
    if len(head) > MAX_HEAD or not _HEADERS.fullmatch(head, line_end):
        return None
    length = -1
    close = form = False
    for name, value in _FIELDS_REGEX.findall(low, line_end):
        if name == b"content-length":
            if length >= 0 or not value.isdigit() or len(value) > 6:
                return None
            length = int(value)
        elif name == b"content-type":
            if value not in _FORM_TYPES:
                return None
            form = True
        elif name == b"connection" and value in (b"keep-alive", b"close"):
            close = value == b"close"
        else:
            return None
    if length < 0 or length > MAX_BODY or not form:
        return None
    return length, close


NAMES = st.sampled_from([b"Content-Length", b"content-length", b"Content-Type", b"Connection", b"Host",
                         b"X-Twilio-Signature", b"Transfer-Encoding", b"Content-Encoding", b"Expect", b"Upgrade",
                         b"Content-Lengthx", b"X-Content-Length", b"Bad Name", b"", b"A:B"])
VALUES = st.one_of(
    st.sampled_from([b"12", b" 12 ", b"\t12\t", b"012", b"1234567", b"-1", b"1 2", b"application/x-www-form-urlencoded",
                     b" Application/X-WWW-Form-Urlencoded ", b"application/x-www-form-urlencoded; charset=utf-8",
                     b"text/plain", b"keep-alive", b"close", b"Close ", b"upgrade", b"chunked", b"", b" ", b":x:",
                     b"\x7f", b"a\rb", b"a\nb", b"\x80\xff", b"100-continue"]),
    st.binary(max_size=12),
)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(NAMES, VALUES, st.sampled_from([b":", b": ", b":\t", b" :"])), max_size=8))
    return b"POST /x HTTP/1.1" + b"".join(b"\r\n" + n + sep + v for n, v, sep in lines)


@settings(max_examples=3000)
@given(heads())
@example(b"POST /x HTTP/1.1")
@example(b"POST /x HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3")
@example(b"POST /x HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3"
         b"\r\nContent-Length: 3")
@example(b"POST /x HTTP/1.1\r\ncontent-type:application/x-www-form-urlencoded \r\ncontent-length:\t7\t"
         b"\r\nConnection: close")
def test_framing_decides_as_the_regex_did(head: bytes) -> None:
    line_end = head.find(b"\r\n")
    line_end = len(head) if line_end < 0 else line_end
    low = head.lower()
    assert _Lane._framing(head, low, line_end) == framing_reference(head, low, line_end)

