"""What the fuzz sends: hostile values, parameter values per documented call, and whole requests (API calls,
status callbacks, raw HTTP) drawn by Hypothesis against a :class:`~tests.fuzz.live.LiveEngine`."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote, quote_plus, urlencode

import orjson
from hypothesis import strategies as st

from engine.api.openapi import CALLS
from tests.fuzz.live import LiveEngine, Request

MAX_BIGINT: Final = 2**63 - 1
INJECTED: Final = "X-Injected"
CARRIER_CALLS: Final = frozenset(c.name for c in CALLS if c.carrier)
SEND_CALLS: Final = frozenset({"send_message", "send_messages"})
CALL_PARAMS: Final[dict[str, tuple[str, ...]]] = {c.name: tuple(p.name for p in c.params) for c in CALLS}
ALL_PARAMS: Final = tuple(sorted({name for names in CALL_PARAMS.values() for name in names}))


# ---- hostile values ---------------------------------------------------------------------------------

SQL_INJECTION: Final = (
    "1'; DROP TABLE engine_outbound; --",
    "' OR '1'='1",
    "1; DELETE FROM engine_app; --",
    "\\'; TRUNCATE engine_outbound CASCADE; --",
    "$1",
    "$$; DROP TABLE engine_did; $$",
    "'||pg_sleep(5)||'",
    "\") OR 1=1 --",
    "1) OR (1=1",
    "E'\\x00'",
    "'::text",
    "%s",
    "%(x)s",
    "{0}",
    "2125550100'; UPDATE engine_outbound SET state='delivered'; --",
    "HELLO'; DROP TABLE engine_keyword; --",
)
CRLF: Final = (
    f"a\r\n{INJECTED}: yes",
    f"\r\n{INJECTED}: yes\r\n\r\n<html>",
    "x\nSet-Cookie: a=b",
    f"%0d%0a{INJECTED}:%20yes",
    "\u2028\u2029\u0085",
)
NUMBERS: Final = (
    "0", "-1", "-0", "+1", "1e3", "1.5", "NaN", "inf", "-inf", "99999999999999999999", str(MAX_BIGINT),
    str(MAX_BIGINT + 1), str(-MAX_BIGINT - 2), "0x10", "1_000", "٣", "²", "１２", " 7 ", "00000000000000000001",
    "9" * 5000,
)
JUNK: Final = (
    "", " ", "\t\n", "\x00", "a\x00b", "null", "None", "undefined", "true", "[]", "{}", "{{name}}", "{{", "}}",
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "%", "%%", "%zz", "&", "=", "&&==", "+", "\\", "\ufeff",
    "😀😀😀", "é", "ß", "İ", "\u202e", "\U0010ffff", "<script>alert(1)</script>", "${jndi:ldap://x}", "{{7*7}}",
    "\x1b[31m", "\x7f", ",,,", ", , ,",
)
HOSTILE: Final = SQL_INJECTION + CRLF + NUMBERS + JUNK

huge = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "é", "😀", "9", "1,", "\x00", "a b", "{{n}}", "2125550100,", "'"]),
    st.sampled_from([33, 65, 256, 1601, 4000, 20000]),
)
junk = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=24), huge)

PHONES: Final = (
    "2125550100", "+1(347)264-3707", "13472643707", "212-555-0101", "(646) 200-0001", "+44 20 7946 0958", "12345",
    "+15555550100", "1-800-FLOWERS", "+1 212 555 0102", "2125550103", "+12125550104", "0012125550100",
)
phone = st.one_of(st.sampled_from(PHONES), st.sampled_from(PHONES), junk)
phone_list = st.one_of(
    st.lists(phone, min_size=1, max_size=6).map(",".join),
    st.just(",".join(["2125550100"] * 1001)),
    st.lists(st.sampled_from(PHONES), min_size=1, max_size=4).map(", ".join),
)
body_text = st.one_of(
    st.sampled_from(["hi", "Storytime at 10", "héllo 😀", "(1/2) x", "x" * 1600, "x" * 1601]),
    st.text(min_size=1, max_size=200),
    junk,
)
template_text = st.one_of(
    st.sampled_from(
        ["Hello, {{name}}", "{{a}}{{b}}", "{{ name }}!", "no placeholders", "{{}}", "{{name}", "{{a}}" * 40]
    ),
    body_text,
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
substitutions = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["name", "a", "b", "", "{{name}}"]),
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.floats(), json_value, huge),
        max_size=3,
    ),
    json_value,
)
recipients_json = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(PHONES), st.text(max_size=14)), substitutions, max_size=5).map(
        json.dumps
    ),
    json_value.map(json.dumps),
    st.sampled_from([
        '{"1":', "[", '{"2125550100": {"name": "x"}', '\ufeff{}', "NaN", '{"a": 1e999}', "[" * 2000 + "]" * 2000,
        '{"2125550100": {"name": "' + "x" * 2000 + '"}}', json.dumps({f"212555{i:04d}": {} for i in range(1001)}),
        '{"2125550100": 1}', '{"2125550100": []}', '{"2125550100": {"name": {"deep": 1}}}',
    ]),
    junk,
)
BOOLEANS: Final = ("1", "t", "true", "y", "yes", "0", "f", "false", "n", "no", "TRUE", " Yes ")
boolean = st.one_of(st.sampled_from(BOOLEANS), junk)
DATES: Final = (
    "16:30", "Aug 31", "7/31", "2/9/2007", "2007-09-02T00:30:44Z", "02-09-2007 12:30:44 PM EST",
    "Wednesday, January 10, 2001", "10/12/2008 12:55AM -0500", "10/12/2008 12:55AM —0500", "tomorrow", "now", "today",
    "0001-01-01T00:00:00+0500", "0001-01-01T00:00:00-0500", "9999-12-31T23:59:59-0500", "9999-12-31T23:59:59+0500",
    "0001-01-01 00:00 +14:00", "31/31/2020", "Feb 30", "24:61", "2007-09-02T00:30:44+9999", "12:00 XYZ", "1e9",
    "Thu, 01 Jan 1970 00:00:00 +0000", "2038-01-19T03:14:08Z", "29 Feb 2023", "00:00 -2400", "0000-00-00",
    "9999-12-31T23:59:59.999999Z", "1 1 1 1 1 1 1", "January 1, 10000", "12:00 +2359", "12:00 -23:59:60",
    "Jan 1 0001 00:00:01 +0000", "31-12-9999 23:00 -0100",
)
when = st.one_of(
    st.sampled_from(DATES),
    st.sampled_from(DATES),
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(
        lambda d, sign, hh, mm: f"{d.isoformat()}{sign}{hh:02d}{mm:02d}",
        st.datetimes(), st.sampled_from("+-"), st.integers(0, 99), st.integers(0, 99),
    ),
    junk,
)
tag_text = st.one_of(st.sampled_from(["kids", "t1", "x" * 255, "x" * 256]), st.text(max_size=20), junk)
KEYWORDS: Final = (
    "HELLO", "books", "Books", "stop", "STOP please", "opt out", "kw_1", "a" * 33, "a" * 32, "  spaced   out  ",
    "-lead", "ünï", "B", "BOOK", "help", "start", "x'; DROP TABLE engine_keyword; --",
)
keyword = st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(KEYWORDS), junk)
mode = st.one_of(st.sampled_from(["0", "1", "2", "-1", "01", " 1 ", "x", ""]), st.sampled_from(NUMBERS))
tags_csv = st.one_of(
    st.lists(st.one_of(st.sampled_from(["news", "vip", "x" * 64, "x" * 65]), st.text(max_size=10)), max_size=22).map(
        ",".join
    ),
    junk,
)
did_number = st.one_of(
    st.sampled_from(["16462000001", "+16462000001", "6462000002", "212", "*", "2*2", "FLOWERS", "+442079460958",
                     "1" * 17, "+1 646 200 0003"]),
    junk,
)
country = st.one_of(st.sampled_from(["US", "CA", "us", "GB", "FR", "USA", "U", "", "1A", "ÜS", "ZZ"]), junk)


def known_id(known: list[int]) -> st.SearchStrategy[str]:
    """One of the ids issued so far, as text. The draw itself never depends on how many there are
    (Hypothesis replays draws), only the mapping from the drawn index does."""
    return st.integers(0, 2**16).map(lambda i: str(known[i % len(known)]) if known else "1")


def ids_csv(known: list[int]) -> st.SearchStrategy[str]:
    one = st.one_of(
        known_id(known),
        known_id(known),
        st.integers(-5, 50).map(str),
        st.sampled_from(NUMBERS),
        junk,
    )
    return st.one_of(
        st.lists(one, min_size=1, max_size=6).map(",".join),
        st.just(",".join(["1"] * 10_001)),
    )


def param_value(name: str, known: list[int]) -> st.SearchStrategy[str]:
    """A value for parameter *name*: mostly plausible, sometimes hostile."""
    plausible: dict[str, st.SearchStrategy[str]] = {
        "phone_number": phone,
        "phone_numbers": phone_list,
        "body": body_text,
        "template": template_text,
        "recipients": recipients_json,
        "action_expected": boolean,
        "auto_subscribe": boolean,
        "on": when,
        "tag": tag_text,
        "message_ids": ids_csv(known),
        "keyword": keyword,
        "mode": mode,
        "auto_subscribe_tags": tags_csv,
        "number": did_number,
        "country": country,
    }
    return st.one_of(plausible.get(name, junk), plausible.get(name, junk), plausible.get(name, junk), junk)


# ---- request strategies ----------------------------------------------------------------------------

CALL_NAMES: Final = tuple(CALL_PARAMS)
BAD_CALLS: Final = (
    "openapi.json", "SEND_MESSAGE", "send_message ", "send_message\x00", "../admin", "..%2f..%2fetc%2fpasswd",
    "%2e%2e", "send_message;drop", "__init__", "calls", "handle", "authenticate", "_smsc", "routes",
    f"send_message\r\n{INJECTED}: yes", "🙂", "x" * 5000, "", "send_message/", "send_message?x=1", "send_message#",
    "send%5Fmessage", "%", "%zz", "/",
)
WRONG_TYPES: Final = (
    "application/json", "text/plain", "application/xml", "application/x-www-form-urlencoded; charset=bogus",
    "application/x-www-form-urlencoded; charset=latin-1", "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=utf-32", "application/x-www-form-urlencoded; charset=",
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=zzz",
    "multipart/form-data; boundary=zzz", "*/*", "garbage", "application/x-www-form-urlencoded;;;;",
    "application/x-www-form-urlencoded; charset=\"utf-8\"", "text/html; charset=utf-8", "",
)
METHODS: Final = ("GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def api_key_value(engine: LiveEngine) -> st.SearchStrategy[str | None]:
    good = st.just(engine.key)
    return st.one_of(
        good, good, good, good, good,
        st.sampled_from([
            None, engine.bare_key, f"  {engine.key}  ", engine.key.upper(), engine.key[:-1], engine.key + "x",
            hashlib.sha256(engine.key.encode()).hexdigest(), "' OR '1'='1", f"{engine.key}\x00", "",
        ]),
        junk,
    )


def encode_pairs(pairs: list[tuple[str, str]], style: str) -> str:
    if style == "plus":
        return urlencode(pairs, quote_via=quote_plus)
    if style == "raw":  # no escaping at all: '&', '=', '%' and '+' inside values break the fields apart
        return "&".join(f"{k}={v}" for k, v in pairs)
    return urlencode(pairs, quote_via=quote)


def multipart(pairs: list[tuple[str, str]], draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[bytes, str]:
    """A hand-made multipart/form-data body, sometimes subtly or grossly broken."""
    boundary = draw(st.sampled_from(["b0undary", "x", "a" * 70, "--", "é"]))
    chunks: list[bytes] = []
    for name, value in pairs:
        flaw = draw(st.sampled_from(["", "", "", "filename", "base64", "bad-base64", "charset", "no-name", "binary",
                                     "quoted-printable", "nested"]))
        head = f'Content-Disposition: form-data; name="{name}"'
        data = value.encode("utf-8", "surrogatepass")
        if flaw == "filename":
            head += '; filename="../../etc/passwd"'
        elif flaw == "no-name":
            head = "Content-Disposition: form-data"
        elif flaw == "base64":
            head += "\r\nContent-Transfer-Encoding: base64"
            data = base64.b64encode(data)
        elif flaw == "bad-base64":
            head += "\r\nContent-Transfer-Encoding: base64"
            data = b"!!not base64!!" + data
        elif flaw == "quoted-printable":
            head += "\r\nContent-Transfer-Encoding: quoted-printable"
            data = b"=ZZ=" + data
        elif flaw == "charset":
            head += "\r\nContent-Type: text/plain; charset=" + draw(st.sampled_from(["bogus", "utf-16", "ascii", ""]))
        elif flaw == "binary":
            head += "\r\nContent-Type: application/octet-stream"
        elif flaw == "nested":
            head += "\r\nContent-Type: multipart/mixed; boundary=inner"
            data = b"--inner\r\n\r\nx\r\n--inner--"
        chunks.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    ending = draw(st.sampled_from([f"--{boundary}--\r\n", f"--{boundary}--\r\n", "", f"--{boundary}", "--"]))
    content_type = draw(st.sampled_from([
        f"multipart/form-data; boundary={boundary}", f'multipart/form-data; boundary="{boundary}"',
        "multipart/form-data; boundary=other", "multipart/form-data",
    ]))
    return b"".join(chunks) + ending.encode(), content_type.encode("utf-8").decode("latin-1")


def with_body(
    draw: Callable[[st.SearchStrategy[Any]], Any], pairs: list[tuple[str, str]], path: str, kind: str,
    call: str | None,
) -> Request:
    """Put *pairs* into a request to *path*: query string, form body, multipart, wrong type, binary, compressed."""
    how = draw(st.sampled_from(["get", "get", "form", "form", "form", "form-no-type", "mixed", "multipart",
                                "wrong-type", "binary", "compressed", "method"]))
    style = draw(st.sampled_from(["quote", "plus", "raw"]))
    headers: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)) == 0:
        headers.append((draw(st.sampled_from(["X-Forwarded-For", "User-Agent", "Referer", "X-Twilio-Signature"])),
                        draw(st.sampled_from(["' OR 1=1 --", "é" * 10, "a" * 4000, "%0d%0aX: y"])).encode()
                        .decode("latin-1")))
    if how == "get":
        query = encode_pairs(pairs, style) if style != "raw" else quote(encode_pairs(pairs, style), safe="&=%+")
        return Request(kind, "GET", f"{path}?{query}", headers=tuple(headers), call=call)
    if how == "method":
        method = draw(st.sampled_from(METHODS))
        return Request(kind, method, f"{path}?{encode_pairs(pairs, 'quote')}", headers=tuple(headers), call=call)
    if how == "mixed":
        cut = draw(st.integers(0, len(pairs)))
        query = encode_pairs(pairs[:cut], "quote")
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return Request(kind, "POST", f"{path}?{query}", encode_pairs(pairs[cut:], style).encode(), tuple(headers),
                       call=call)
    if how == "multipart":
        body, content_type = multipart(pairs, draw)
        headers.append(("Content-Type", content_type))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    form = encode_pairs(pairs, style).encode("utf-8", "surrogatepass")
    if how == "form":
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return Request(kind, "POST", path, form, tuple(headers), call=call)
    if how == "form-no-type":
        return Request(kind, "POST", path, form, tuple(headers), call=call)
    if how == "wrong-type":
        body = draw(st.sampled_from([form, orjson.dumps(dict(pairs)), form.decode().encode("utf-16")]))
        headers.append(("Content-Type", draw(st.sampled_from(WRONG_TYPES))))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    if how == "binary":
        body = draw(st.one_of(st.binary(max_size=300), st.sampled_from([b"\xff\xfe\xfd", b"\x00" * 100,
                                                                      b"api_key=\xff&body=\xc3"])))
        headers.append(("Content-Type", draw(st.sampled_from(WRONG_TYPES))))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    encoding = draw(st.sampled_from(["gzip", "deflate", "br", "gzip, gzip", "identity", "x-unknown"]))
    body = draw(st.sampled_from([gzip.compress(form), zlib.compress(form), b"\x1f\x8b\x08garbage", form,
                                 gzip.compress(form)[:-4]]))
    headers += [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", encoding)]
    return Request(kind, "POST", path, body, tuple(headers), call=call)


GOOD_PHONES: Final = ("2125550100", "+1(347)264-3707", "13472643707", "212-555-0101", "(646) 200-0001", "2125550103")
plain_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=120).filter(str.strip)


def good_value(name: str, known: list[int]) -> st.SearchStrategy[str]:
    """A value for parameter *name* that the call should accept (so the write paths get exercised)."""
    good: dict[str, st.SearchStrategy[str]] = {
        "phone_number": st.sampled_from(GOOD_PHONES),
        "phone_numbers": st.lists(st.sampled_from((*GOOD_PHONES, "12345")), min_size=1, max_size=4).map(",".join),
        "body": plain_text,
        "template": st.sampled_from(["Hello, {{name}}", "{{ name }}: {{a}}", "Hi"]),
        "recipients": st.dictionaries(
            st.sampled_from((*GOOD_PHONES, "12345")),
            st.fixed_dictionaries({"name": plain_text, "a": st.one_of(st.integers(-(2**53), 2**53), st.booleans())}),
            min_size=1, max_size=4,
        ).map(json.dumps),
        "action_expected": st.sampled_from(BOOLEANS),
        "auto_subscribe": st.sampled_from(BOOLEANS),
        "on": st.sampled_from(DATES[:12]),
        "tag": st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40),
        "message_ids": st.lists(known_id(known), min_size=1, max_size=5).map(",".join),
        "keyword": st.sampled_from(["HELLO", "books", "kw_1", "Deals now", "B"]),
        "mode": st.sampled_from(["0", "1"]),
        "auto_subscribe_tags": st.sampled_from(["", "news", "news,vip"]),
        "number": st.sampled_from(["6462000002", "+16462000003", "16462000001"]),
        "country": st.sampled_from(["US", "us", "CA"]),
    }
    return good.get(name, plain_text)


@st.composite
def api_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    """A call with hostile parts; or (half the time) a good call with at most one hostile part."""
    careful = draw(st.booleans())
    roll = draw(st.integers(0, 9))
    if roll < 3:
        call = draw(st.sampled_from(sorted(SEND_CALLS)))
        segment = quote(call, safe="")
    elif roll < 9 or careful:
        call = draw(st.sampled_from(CALL_NAMES))
        segment = quote(call, safe="")
    else:
        call = draw(st.one_of(st.sampled_from(BAD_CALLS), st.text(max_size=40)))
        segment = quote(call, safe=draw(st.sampled_from(["", "/", "/%.", "%"])))
    documented = CALL_PARAMS.get(call, ())
    pairs: list[tuple[str, str]] = []
    if careful:
        required = {p.name for c in CALLS if c.name == call for p in c.params if p.required}
        required |= {"body", "phone_numbers"} & set(documented)
        for name in documented:
            if name in required or draw(st.integers(0, 9)) < 4:
                pairs.append((name, draw(good_value(name, engine.issued))))
        if pairs and draw(st.integers(0, 2)) == 0:  # poison one of them
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(param_value(pairs[i][0], engine.issued)))
    else:
        for name in documented:
            if draw(st.integers(0, 9)) < 7:
                pairs.append((name, draw(param_value(name, engine.issued))))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.one_of(st.sampled_from(ALL_PARAMS), st.sampled_from(["api_key[]", "", "\x00", "API_KEY",
                                                                                "api_key ", *CRLF]),
                                  st.text(max_size=8)))
            pairs.append((name, draw(param_value(name, engine.issued))))
        draw(st.randoms(use_true_random=False)).shuffle(pairs)
    key = engine.key if careful and draw(st.integers(0, 9)) < 9 else draw(api_key_value(engine))
    if key is not None:
        pairs.insert(draw(st.integers(0, len(pairs))), ("api_key", key))
    path = f"/api/{segment}"
    target_call = call if call in CALL_PARAMS else None
    if careful and draw(st.integers(0, 3)) > 0:
        if draw(st.booleans()):
            return Request("api", "GET", f"{path}?{urlencode(pairs)}", call=target_call)
        return Request("api", "POST", path, urlencode(pairs).encode(),
                       (("Content-Type", "application/x-www-form-urlencoded"),), call=target_call)
    return with_body(draw, pairs, path, "api", target_call)


TWILIO_STATUSES: Final = (
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled", "accepted", "scheduled",
    "receiving", "received", "DELIVERED", " delivered ", "deliver ed", "delivered\x00",
)
ERROR_CODES: Final = ("30003", "0", "", "²", "-1", "99999999999", "2147483648", "1e3", "abc", "３０００３", "30003 ")


@st.composite
def webhook_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    provider = draw(st.one_of(
        st.just(str(engine.provider_id)), st.just(str(engine.provider_id)), st.just(str(engine.provider_id)),
        st.sampled_from(["0", "-1", "99999999999999999999", str(MAX_BIGINT + 1), str(MAX_BIGINT), "٣", "1_0",
                         "+1", f"0{engine.provider_id}", "abc", "%00", "%2e%2e"]),
    ))
    message = draw(st.one_of(
        known_id(engine.issued), known_id(engine.issued), known_id(engine.issued),
        st.sampled_from(["0", "-1", "99999999999999999999", str(MAX_BIGINT + 1), str(-MAX_BIGINT - 2), "1_0", "٣",
                         "1e3", "x", "9" * 5000, "%20"]),
        st.text(alphabet="0123456789abc", min_size=1, max_size=30),
    ))
    query = draw(st.sampled_from(["", "", "", "?a=b", "?MessageStatus=delivered", "?x=%zz"]))
    target = engine.status_url(provider, message, query)
    fields: dict[str, str] = {}
    if draw(st.integers(0, 9)) < 8:
        fields["MessageStatus"] = draw(st.one_of(st.sampled_from(TWILIO_STATUSES), junk))
    if draw(st.booleans()):
        fields["SmsStatus"] = draw(st.one_of(st.sampled_from(TWILIO_STATUSES), junk))
    if draw(st.booleans()):
        fields["ErrorCode"] = draw(st.one_of(st.sampled_from(ERROR_CODES), junk))
    if draw(st.booleans()):
        fields["MessageSid"] = draw(st.one_of(st.just("SM" + "0123456789abcdef" * 2), junk))
    for _ in range(draw(st.integers(0, 2))):
        fields[draw(st.one_of(st.sampled_from(["AccountSid", "To", "From", "ApiVersion", "", "\x00"]),
                              st.text(max_size=8)))] = draw(junk)
    signature_kind = draw(st.sampled_from(["good", "good", "good", "good", "flipped", "random", "empty", "missing",
                                           "other-token", "other-url", "non-ascii", "long"]))
    good = engine.signed(target, fields)
    signature: str | None = {
        "good": good,
        "flipped": good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
        "random": draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                               min_size=len(good), max_size=len(good))),
        "empty": "",
        "missing": None,
        "other-token": engine.signed(target, fields, token="not-the-token"),
        "other-url": engine.signed(target + "x", fields),
        "non-ascii": "é" * len(good),
        "long": good * 100,
    }[signature_kind]
    request = with_body(draw, list(fields.items()), target, "webhook", None)
    if draw(st.integers(0, 4)) > 0:  # mostly a well-formed form POST, so the signature path is exercised
        request = Request("webhook", "POST", target, urlencode(list(fields.items())).encode(),
                          (("Content-Type", "application/x-www-form-urlencoded"),))
    if signature is not None:
        encoded = signature.encode("utf-8").decode("latin-1")
        request = Request(request.kind, request.method, request.target, request.body,
                          (*request.headers, ("X-Twilio-Signature", encoded)), call=None)
    return request


RAW_LINES: Final = (
    b"Host: x", b"Content-Length: -1", b"Content-Length: 5\r\nContent-Length: 6", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: chunked, identity", b"X-Twilio-Signature: \xff\xfe", b"Content-Length: 99999999999999999999",
    b"Content-Type: application/x-www-form-urlencoded; charset=\xff", b"NoColonHere", b"Space : before",
    b" folded continuation", b"X-Long: " + b"a" * 9000, b"X-Nul: a\x00b", b"Content-Encoding: gzip",
    b"Expect: 100-continue", b"Content-Length: 0", b"Upgrade: websocket", b"Connection: upgrade",
)


@st.composite
def raw_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"G\x00T", b"", b"get", b"POST /", b"\xff" * 3]))
    call = draw(st.sampled_from([*CALL_NAMES, "x", ""]))
    target = draw(st.sampled_from([
        f"/api/{call}?api_key={engine.key}&phone_number=2125550100&body=hi%0d%0aX-Injected:%20yes".encode(),
        f"/api/{call}?api_key={engine.key}\r\n{INJECTED}: yes".encode(),
        b"/api/send_message?body=a b&api_key=" + engine.key.encode(),
        "/api/send_mé".encode(), b"/api/../../etc/passwd", b"/api/%2e%2e/%2e%2e/etc/passwd", b"*", b"",
        b"http://evil/api/dids", b"/api/" + b"x" * 9000, b"/api/dids?" + b"%" * 10, b"/webhooks/twilio/status/1/1",
        f"/webhooks/twilio/status/{engine.provider_id}/99999999999999999999".encode(), b"/\x00", b"//api//dids",
    ]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"HTTP/1.1 x",
                                    f"HTTP/1.1\r\n{INJECTED}: yes".encode()]))
    lines = draw(st.lists(st.sampled_from(RAW_LINES), max_size=3))
    body = draw(st.one_of(st.binary(max_size=64), st.just(b"api_key=" + engine.key.encode() + b"&body=x"),
                          st.just(b"5\r\nhello\r\nzz\r\n")))
    if not any(line.lower().startswith((b"content-length", b"transfer-encoding")) for line in lines):
        lines.append(b"Content-Length: %d" % len(body))
    head = b"\r\n".join([method + b" " + target + b" " + version, *lines, b"Connection: close"])
    return Request("raw", raw=head + b"\r\n\r\n" + body)
