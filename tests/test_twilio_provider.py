"""TwilioClient against mocked HTTP: wire format, error classification, and the signature algorithm."""

from __future__ import annotations

import base64
import inspect
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from engine.providers import OutboundRequest, SendResult
from engine.providers.twilio import (
    TwilioClient,
    basic_authorization,
    classify_create_response,
    is_final_status,
    parse_retry_after,
    twilio_signature,
    validate_twilio_signature,
)
from engine.statuses import from_twilio

SID = "AC" + "1" * 32
TOKEN = "s3cret-token-value"
BASE = "https://api.example.test"
MESSAGES_URL = f"{BASE}/2010-04-01/Accounts/{SID}/Messages.json"
ACCOUNT_URL = f"{BASE}/2010-04-01/Accounts/{SID}.json"

REQ = OutboundRequest(
    message_id=1,
    to="+15551230001",
    from_="+15557654321",
    body="Hello & welcome = 100% ✓",
    status_callback="https://engine.example.test/twilio/status?app=3",
)

# Twilio's request-validation worked example: token "12345", this URL, these params. Two published
# pairings exist; both are the same token/URL and differ only in the phone numbers signed:
#  - docs (twilio.com/docs/usage/webhooks/webhooks-security): +12349013030 -> "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
#  - the official SDK test suites (twilio-php RequestValidatorTest, twilio-csharp): +14158675309
#    -> "RSOYDt4T1cUTdK1PDd93/VVr8B8="
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_TOKEN = "12345"
SIGNATURE_VECTORS = [
    (
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+12349013030",
            "Digits": "1234",
            "From": "+12349013030",
            "To": "+18005551212",
        },
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
    ),
    (
        {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+14158675309",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
        },
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    ),
]


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` (pnuckowski/aioresponses#289)."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def _mock_post(m: aioresponses, url: str, **kwargs: Any) -> None:
    m.post(url, response_class=_CompatResponse, **kwargs)


def _mock_get(m: aioresponses, url: str, **kwargs: Any) -> None:
    m.get(url, response_class=_CompatResponse, **kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(session: aiohttp.ClientSession) -> TwilioClient:
    return TwilioClient(session, account_sid=SID, auth_token=TOKEN, base_url=BASE + "/")


def _sent(mocked: aioresponses) -> tuple[dict[str, str], dict[str, str]]:
    """(form fields, headers) of the single request the mock saw."""
    calls = mocked.requests[("POST", URL(MESSAGES_URL))]
    assert len(calls) == 1
    kwargs: dict[str, Any] = calls[0].kwargs
    data = kwargs["data"]
    assert isinstance(data, bytes)
    return dict(parse_qsl(data.decode(), keep_blank_values=True)), dict(kwargs["headers"])


def _twilio_error(code: int, message: str, status: int) -> bytes:
    return orjson.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )


def _assert_no_secret(result: SendResult) -> None:
    assert TOKEN not in repr(result)


# ---- signature -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "expected"), SIGNATURE_VECTORS)
def test_signature_matches_twilio_published_vectors(params: dict[str, str], expected: str) -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, params) == expected
    assert validate_twilio_signature(DOC_TOKEN, DOC_URL, params, expected)


def test_signature_ignores_param_order() -> None:
    params, expected = SIGNATURE_VECTORS[0]
    shuffled = dict(reversed(list(params.items())))
    assert twilio_signature(DOC_TOKEN, DOC_URL, shuffled) == expected


def test_signature_rejects_any_change() -> None:
    params, expected = SIGNATURE_VECTORS[0]
    assert not validate_twilio_signature(DOC_TOKEN, DOC_URL, {**params, "Digits": "9999"}, expected)
    assert not validate_twilio_signature(DOC_TOKEN, DOC_URL + "&x=1", params, expected)
    assert not validate_twilio_signature("other", DOC_URL, params, expected)
    assert not validate_twilio_signature(DOC_TOKEN, DOC_URL, params, expected[:-2])
    assert not validate_twilio_signature(DOC_TOKEN, DOC_URL, params, "")
    assert not validate_twilio_signature(DOC_TOKEN, DOC_URL, params, "ünïcode✓")


def test_basic_authorization_header() -> None:
    header = basic_authorization(SID, TOKEN)
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == f"{SID}:{TOKEN}"


# ---- send: success and wire format -----------------------------------------------------------------


async def test_send_success_parses_sid_and_status(client: TwilioClient) -> None:
    reply = {"sid": "SM" + "a" * 32, "status": "queued", "to": REQ.to, "error_code": None}
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=201, body=orjson.dumps(reply), content_type="application/json")
        result = await client.send(REQ)
    assert result == SendResult(
        ok=True, provider_message_id="SM" + "a" * 32, provider_status="queued", http_status=201
    )


async def test_send_posts_form_with_basic_auth(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=201, body=b'{"sid": "SM1", "status": "queued"}')
        await client.send(REQ)
        form, headers = _sent(m)
    assert form == {
        "To": REQ.to,
        "From": REQ.from_,
        "Body": REQ.body,
        "StatusCallback": REQ.status_callback,
    }
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


async def test_send_with_messaging_service_only(session: aiohttp.ClientSession) -> None:
    client = TwilioClient(
        session, account_sid=SID, auth_token=TOKEN, base_url=BASE, messaging_service_sid="MG" + "2" * 32
    )
    request = OutboundRequest(message_id=2, to="+15551230002", from_=None, body="hi", status_callback=None)
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=201, body=b'{"sid": "SM2", "status": "accepted"}')
        result = await client.send(request)
        form, _ = _sent(m)
    assert result.ok
    assert result.provider_status == "accepted"
    assert form == {"To": "+15551230002", "Body": "hi", "MessagingServiceSid": "MG" + "2" * 32}


async def test_send_with_from_and_messaging_service(session: aiohttp.ClientSession) -> None:
    client = TwilioClient(
        session, account_sid=SID, auth_token=TOKEN, base_url=BASE, messaging_service_sid="MG" + "3" * 32
    )
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=201, body=b'{"sid": "SM3", "status": "queued"}')
        await client.send(REQ)
        form, _ = _sent(m)
    assert form["From"] == REQ.from_
    assert form["MessagingServiceSid"] == "MG" + "3" * 32


@pytest.mark.parametrize(
    ("to", "from_", "body", "callback"),
    [
        ("+15551230001", "+15557654321", "plain", None),
        ("+15551230001", None, "a+b & c=d %20 ✓ 😀\n", "https://x.test/s?a=1&b=%2F c"),
        ("5551230001", "MyBrand", "", "https://x.test/s"),
        ("+15551230001", "+15557654321", "x", "http://127.0.0.1:8080/webhooks/twilio/status/3/1234567"),
        ("+15551230001", "+15557654321", "x", "http://127.0.0.1:8080/webhooks/twilio/status/3/"),
        ("+15551230001", "+15557654321", "x", "http://h/a?b=/12"),
        ("+1555١٢٣", "+", "tab\tnul", None),  # non-ASCII digits must take the generic quoter
    ],
)
def test_encode_form_matches_urlencode(
    client: TwilioClient, to: str, from_: str | None, body: str, callback: str | None
) -> None:
    request = OutboundRequest(message_id=9, to=to, from_=from_, body=body, status_callback=callback)
    fields = [("To", to)]
    if from_:
        fields.append(("From", from_))
    fields.append(("Body", body))
    if callback:
        fields.append(("StatusCallback", callback))
    for _ in range(2):  # second pass hits the cached callback quoting
        assert client.encode_form(request) == urlencode(fields).encode()
    if callback and callback[-1:].isdigit():  # another message id after the same prefix: still exact
        other = replace(request, status_callback=callback + "0")
        assert client.encode_form(other) == urlencode([*fields[:-1], ("StatusCallback", callback + "0")]).encode()
    if callback:  # and the URL without its last segment, after it: its own quoting, not the prefix's
        cut = callback.rpartition("/")[0]
        shorter = replace(request, status_callback=cut)
        assert client.encode_form(shorter) == urlencode([*fields[:-1], ("StatusCallback", cut)]).encode()


async def test_2xx_without_sid_is_ambiguous(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=201, body=b"<html>ok</html>")
        result = await client.send(REQ)
    assert not result.ok
    assert result.retryable and result.ambiguous


# ---- send: carrier errors --------------------------------------------------------------------------


async def test_429_with_retry_after_seconds(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(
            m,
            MESSAGES_URL,
            status=429,
            body=_twilio_error(20429, "Too Many Requests", 429),
            headers={"Retry-After": "7"},
        )
        result = await client.send(REQ)
    assert not result.ok and result.retryable and not result.ambiguous
    assert result.retry_after == 7.0
    assert result.error_code == 20429
    assert result.http_status == 429


async def test_429_with_retry_after_http_date(client: TwilioClient) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    with aioresponses() as m:
        _mock_post(
            m,
            MESSAGES_URL,
            status=429,
            body=_twilio_error(20429, "Too Many Requests", 429),
            headers={"Retry-After": format_datetime(when, usegmt=True)},
        )
        result = await client.send(REQ)
    assert result.retryable
    assert result.retry_after is not None
    assert 25.0 <= result.retry_after <= 30.0


async def test_429_without_retry_after(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=429, body=_twilio_error(20429, "Too Many Requests", 429))
        result = await client.send(REQ)
    assert result.retryable and result.retry_after is None


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("inf") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0


async def test_500_is_retryable_with_code(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=500, body=_twilio_error(20500, "Internal Server Error", 500))
        result = await client.send(REQ)
    assert not result.ok and result.retryable and not result.ambiguous
    assert result.error_code == 20500
    assert result.http_status == 500


async def test_503_html_body_is_retryable(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=503, body=b"<html>busy</html>", headers={"Retry-After": "2"})
        result = await client.send(REQ)
    assert result.retryable and result.retry_after == 2.0
    assert result.error_code is None
    assert result.error_message is not None and "503" in result.error_message


async def test_400_invalid_number_is_permanent(client: TwilioClient) -> None:
    message = "The 'To' number +1555 is not a valid phone number."
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=400, body=_twilio_error(21211, message, 400))
        result = await client.send(REQ)
    assert result == SendResult(ok=False, error_code=21211, error_message=message, http_status=400)


async def test_401_is_permanent_and_token_never_leaks(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, status=401, body=_twilio_error(20003, "Authenticate", 401))
        result = await client.send(REQ)
    assert not result.ok and not result.retryable
    assert result.error_code == 20003
    _assert_no_secret(result)


def test_classify_string_code_and_missing_message() -> None:
    result = classify_create_response(400, b'{"code": "21610"}', None)
    assert result.error_code == 21610
    assert result.error_message == "HTTP 400"
    assert not result.retryable


# ---- send: network errors --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connection_refused_is_retryable_not_ambiguous(session: aiohttp.ClientSession) -> None:
    client = TwilioClient(
        session, account_sid=SID, auth_token=TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}"
    )
    result = await client.send(REQ)
    assert not result.ok and result.retryable and not result.ambiguous
    assert result.error_message is not None and "ClientConnectorError" in result.error_message
    _assert_no_secret(result)


async def test_connect_timeout_is_not_ambiguous(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, exception=aiohttp.ConnectionTimeoutError("connect timeout"))
        result = await client.send(REQ)
    assert result.retryable and not result.ambiguous


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        aiohttp.SocketTimeoutError("read timeout"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("truncated"),
        ConnectionResetError("reset"),
    ],
    ids=["total-timeout", "read-timeout", "disconnected", "payload", "reset"],
)
async def test_failure_after_sending_is_ambiguous(client: TwilioClient, exc: BaseException) -> None:
    with aioresponses() as m:
        _mock_post(m, MESSAGES_URL, exception=exc)
        result = await client.send(REQ)
    assert not result.ok and result.retryable and result.ambiguous
    assert result.error_message


# ---- account check, repr, statuses ------------------------------------------------------------------


async def test_fetch_account(client: TwilioClient) -> None:
    with aioresponses() as m:
        _mock_get(m, ACCOUNT_URL, status=200, body=b'{"sid": "AC1", "friendly_name": "Library SMS"}')
        assert await client.fetch_account() == (True, "Library SMS")
        _mock_get(m, ACCOUNT_URL, status=200, body=b"{}")
        assert await client.fetch_account() == (True, "OK")
        _mock_get(m, ACCOUNT_URL, status=401, body=_twilio_error(20003, "Authenticate", 401))
        assert await client.fetch_account() == (False, "20003: Authenticate")
        _mock_get(m, ACCOUNT_URL, exception=aiohttp.ServerDisconnectedError())
        ok, detail = await client.fetch_account()
    assert not ok and detail.startswith("network error: ServerDisconnectedError")


def test_repr_hides_token(client: TwilioClient) -> None:
    text = repr(client) + str(client)
    assert SID in text
    assert TOKEN not in text
    assert base64.b64encode(f"{SID}:{TOKEN}".encode()).decode() not in text


def test_constructor_rejects_relative_base(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="absolute"):
        TwilioClient(session, account_sid=SID, auth_token=TOKEN, base_url="api.twilio.com")


async def test_close_leaves_callers_session_open(
    client: TwilioClient, session: aiohttp.ClientSession
) -> None:
    await client.close()
    assert not session.closed


# Every MessageStatus Twilio documents for an outbound message.
TWILIO_OUTBOUND_STATUSES = ("accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed",
                            "read", "canceled", "partially_delivered")


@pytest.mark.parametrize("status", TWILIO_OUTBOUND_STATUSES)
def test_a_status_is_final_for_the_client_exactly_when_it_makes_the_message_final(status: str) -> None:
    """The client expects no further callback exactly for the statuses after which the engine's status writer
    takes none either (a final status never changes)."""
    change = from_twilio(status)
    if change is None:  # a status the engine does not track: it changes nothing, so it cannot end the message
        assert not is_final_status(status)
    else:
        assert is_final_status(status) == change.final
    assert is_final_status("delivered") and not is_final_status("sent")


@given(st.text())
def test_form_quote_is_quote_plus(text: str) -> None:
    from urllib.parse import quote_plus

    from engine.providers.twilio import form_quote

    assert form_quote(text) == quote_plus(text, safe="")


def test_form_quote_on_every_ascii_character() -> None:
    from urllib.parse import quote_plus

    from engine.providers.twilio import form_quote

    every = "".join(map(chr, range(128)))
    assert form_quote(every) == quote_plus(every, safe="")
    assert form_quote("Hi there: 50% off & more!") == "Hi+there%3A+50%25+off+%26+more%21"


@given(st.text(max_size=80), st.binary(max_size=300))
def test_hmac_with_cached_pads_is_hmac_sha1(key: str, message: bytes) -> None:
    import hashlib
    import hmac

    from engine.providers.twilio import _hmac_sha1

    expected = hmac.new(key.encode(), message, hashlib.sha1).digest()
    assert _hmac_sha1(key, message) == expected
    assert _hmac_sha1(key, message) == expected  # and again, from the cached pads
