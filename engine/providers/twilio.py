"""Twilio REST provider: the real wire contract (Messages create, webhook signatures; the account's own calls,
credentials check and phone numbers, are :mod:`engine.providers.twilio_numbers`, which TwilioClient inherits).

Everything here speaks exactly what api.twilio.com speaks, so the same client works against the
loopback fake carrier (:mod:`engine.testing`) and production.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

import aiohttp
from yarl import URL

from engine.providers import OutboundRequest, SendResult
from engine.providers.http1 import Http1Pool, InFlight, MaybeSent, NotSent, host_header
from engine.providers.twilio_numbers import TwilioNumbers
from engine.providers.twilio_wire import API_VERSION, FORM_CONTENT_TYPE, error_fields, json_or_none

__all__ = [
    "API_VERSION",
    "INBOUND_WEBHOOK_PATH",
    "TWILIO_DELIVERED_STATUSES",
    "TWILIO_FAILED_STATUSES",
    "TWILIO_FINAL_STATUSES",
    "TwilioClient",
    "basic_authorization",
    "classify_create_response",
    "inbound_webhook_url",
    "is_final_status",
    "parse_retry_after",
    "twilio_signature",
    "validate_twilio_signature",
]

# Where the engine receives a carrier account's incoming texts (engine/inbound/mo.py serves it): every DID
# of the account gets this as its SmsUrl, with SmsMethod POST.
INBOUND_WEBHOOK_PATH: Final = "/webhooks/twilio/inbound/{provider_id}"

TWILIO_FINAL_STATUSES: Final = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})
TWILIO_DELIVERED_STATUSES: Final = frozenset({"delivered", "read"})
TWILIO_FAILED_STATUSES: Final = frozenset({"undelivered", "failed", "canceled"})

def is_final_status(status: str) -> bool:
    """True when Twilio will send no further status for the message (no more callbacks to expect)."""
    return status in TWILIO_FINAL_STATUSES


def inbound_webhook_url(public_base: str, provider_id: int) -> str:
    """The SmsUrl for the numbers of carrier account *provider_id*, under the engine's public base URL."""
    return public_base.rstrip("/") + INBOUND_WEBHOOK_PATH.format(provider_id=provider_id)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + name1 + value1 + ...)), names sorted.

    ``url`` is the full URL Twilio requested, query string included, exactly as configured.
    """
    signed = url + "".join([name + value for name, value in sorted(params.items())])
    return binascii.b2a_base64(_hmac_sha1(auth_token, signed.encode()), newline=False).decode("ascii")


# HMAC-SHA1 with each key's inner and outer pads hashed once (RFC 2104): every callback is signed or checked with
# one of a few account tokens, and OpenSSL's HMAC set-up per call cost more than the hashing itself.
_IPAD: Final = bytes(b ^ 0x36 for b in range(256))
_OPAD: Final = bytes(b ^ 0x5C for b in range(256))
_PADS: dict[str, tuple[Any, Any]] = {}


def _hmac_sha1(key: str, message: bytes) -> bytes:
    """``hmac.new(key.encode(), message, hashlib.sha1).digest()``."""
    pads = _PADS.get(key)
    if pads is None:
        raw = key.encode()
        if len(raw) > 64:  # the block size
            raw = hashlib.sha1(raw).digest()
        raw = raw.ljust(64, b"\0")
        pads = (hashlib.sha1(raw.translate(_IPAD)), hashlib.sha1(raw.translate(_OPAD)))
        if len(_PADS) >= 64:
            _PADS.clear()
        _PADS[key] = pads
    inner = pads[0].copy()
    inner.update(message)
    outer = pads[1].copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def validate_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Check a webhook's X-Twilio-Signature in constant time, so forged callbacks are refused."""
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def basic_authorization(account_sid: str, auth_token: str) -> str:
    """The ``Authorization`` header value for HTTP Basic auth; built once per account, not per request."""
    raw = f"{account_sid}:{auth_token}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with a missing zone
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def classify_create_response(status: int, raw: bytes, retry_after: str | None) -> SendResult:
    """Turn one Messages-create HTTP reply into a SendResult (ok / retryable / permanent)."""
    if 200 <= status < 300:
        doc = json_or_none(raw)
        sid = doc.get("sid") if isinstance(doc, dict) else None
        if isinstance(sid, str) and sid:
            provider_status = doc.get("status")
            return SendResult(
                ok=True,
                provider_message_id=sid,
                provider_status=provider_status if isinstance(provider_status, str) else None,
                http_status=status,
            )
        # Accepted but unreadable: the message probably exists, so a blind retry could duplicate it.
        return SendResult(
            ok=False,
            error_message=f"HTTP {status} without a message sid",
            retryable=True,
            ambiguous=True,
            http_status=status,
        )
    error_code, message = error_fields(raw, status)
    if status == 429 or status >= 500:
        return SendResult(
            ok=False,
            error_code=error_code,
            error_message=message,
            retryable=True,
            retry_after=parse_retry_after(retry_after),
            http_status=status,
        )
    return SendResult(ok=False, error_code=error_code, error_message=message, http_status=status)


# quote_plus(text, safe="") for ASCII text, as one str.translate (C) instead of urllib's per-byte Python loop:
# unreserved characters stay, a space becomes '+', every other ASCII byte becomes %XX.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_QUOTE = {b: "+" if b == 32 else chr(b) if chr(b) in _UNRESERVED else f"%{b:02X}" for b in range(128)}


def form_quote(text: str) -> str:
    """Exactly ``quote_plus(text, safe="")`` (UTF-8), faster for the ASCII bodies most messages have."""
    if text.isascii():
        return text.translate(_FORM_QUOTE)
    return quote_plus(text, safe="")


def _quote_phone(number: str) -> str:
    """Form-quote a phone number; E.164 needs only its '+' escaped, so skip the generic quoter."""
    digits = number[1:]
    if number[:1] == "+" and digits.isascii() and digits.isdigit():
        return "%2B" + digits
    return quote_plus(number, safe="")


def _network_failure(exc: BaseException, *, ambiguous: bool) -> SendResult:
    """A send that died in transport; ambiguous when the request may already have been written."""
    detail = str(exc)
    name = type(exc).__name__
    return SendResult(
        ok=False,
        error_message=f"{name}: {detail}" if detail else name,
        retryable=True,
        ambiguous=ambiguous,
    )


class TwilioClient(TwilioNumbers):
    """Twilio Messages API client for one account; the session (and its connection pool) is the caller's."""

    __slots__ = (
        "_account_url",
        "_base_url",
        "_connect_timeout",
        "_create_head",
        "_headers",
        "_http1_limit",
        "_last_callback",
        "_last_callback_quoted",
        "_messages_url",
        "_pool",
        "_service_suffix",
        "_session",
        "_timeout",
        "account_sid",
        "messaging_service_sid",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str = "https://api.twilio.com",
        messaging_service_sid: str | None = None,
        timeout: float = 15.0,
        connect_timeout: float | None = None,
        http1_limit: int | None = None,
    ) -> None:
        """Precompute URL, headers and static form fields so ``send`` does only per-message work.

        ``connect_timeout`` (default min(5, timeout/2)) must stay below ``timeout``: a connect (or pool
        wait) that times out is known not to have sent anything, while a read timeout (the carrier silent for
        ``timeout`` seconds while we wait for its answer) is ambiguous.

        With ``http1_limit``, ``send`` goes through its own pool of up to that many kept-alive connections
        (:mod:`engine.providers.http1`, a third of aiohttp's cost per send, the same never-sent / maybe-sent
        split) instead of the session; :meth:`close` closes that pool. The other calls use the session.
        """
        if not account_sid:
            raise ValueError("account_sid is required")
        if not auth_token:
            raise ValueError("auth_token is required")
        self._session = session
        self.account_sid = account_sid
        self.messaging_service_sid = messaging_service_sid
        self._base_url = base_url.rstrip("/")
        base = URL(self._base_url)
        if not base.is_absolute():
            raise ValueError(f"base_url must be absolute: {base_url!r}")
        self._messages_url = URL(f"{self._base_url}/{API_VERSION}/Accounts/{account_sid}/Messages.json")
        self._account_url = URL(f"{self._base_url}/{API_VERSION}/Accounts/{account_sid}.json")
        # The token lives only inside this header; it is never stored on its own or shown in repr.
        self._headers: Mapping[str, str] = {
            "Authorization": basic_authorization(account_sid, auth_token),
            "Content-Type": FORM_CONTENT_TYPE,
            "Accept": "application/json",
        }
        self._service_suffix = (
            "&" + urlencode({"MessagingServiceSid": messaging_service_sid}) if messaging_service_sid else ""
        )
        self._last_callback = ""
        self._last_callback_quoted = ""
        connect = connect_timeout if connect_timeout is not None else min(5.0, timeout / 2)
        # No `total` deadline: its per-request timer cost ~7 % of the client's CPU per send (see
        # benchmarks/bench_http_clients.py). A carrier silent for *timeout* seconds while we wait for its
        # answer raises a read timeout instead, which is ambiguous like a total timeout was.
        self._timeout = aiohttp.ClientTimeout(connect=min(connect, timeout), sock_read=timeout)
        self._connect_timeout = min(connect, timeout)
        self._http1_limit = http1_limit
        self._pool: Http1Pool | None = None
        self._create_head = (
            f"POST {self._messages_url.raw_path} HTTP/1.1\r\nHost: {host_header(base)}\r\n"
            f"Authorization: {self._headers['Authorization']}\r\nContent-Type: {FORM_CONTENT_TYPE}\r\n"
            "Accept: application/json\r\nUser-Agent: engine\r\nContent-Length: "
        ).encode()

    def __repr__(self) -> str:
        return (
            f"TwilioClient(account_sid={self.account_sid!r}, base_url={self._base_url!r}, "
            f"messaging_service_sid={self.messaging_service_sid!r}, auth_token=<hidden>)"
        )

    __str__ = __repr__

    def encode_form(self, request: OutboundRequest) -> bytes:
        """The create request's form body: To, From?, Body, StatusCallback?, ValidityPeriod?, MessagingServiceSid?.

        Same bytes as ``urlencode`` over those fields, minus its per-field overhead on the hot path.
        """
        parts = ["To=", _quote_phone(request.to)]
        if request.from_:
            parts += ("&From=", _quote_phone(request.from_))
        parts += ("&Body=", form_quote(request.body))
        callback = request.status_callback
        if callback:
            # The engine's callback URLs differ only in their last segment, the message id (digits, which quote
            # to themselves): quote the part before it once, not every URL in full.
            prefix, slash, tail = callback.rpartition("/")
            if slash and tail.isascii() and tail.isdigit():
                head = prefix + slash
            else:
                head, tail = callback, ""
            if head != self._last_callback:
                self._last_callback = head
                self._last_callback_quoted = quote_plus(head, safe="")
            parts += ("&StatusCallback=", self._last_callback_quoted, tail)
        if request.validity_period is not None:
            parts += ("&ValidityPeriod=", str(request.validity_period))
        parts.append(self._service_suffix)
        return "".join(parts).encode()

    async def send(self, request: OutboundRequest) -> SendResult:
        """POST one message; never raises for carrier or network trouble, it classifies it instead."""
        data = self.encode_form(request)
        if self._http1_limit is not None:
            # The engine's own client (inlined, not a nested coroutine: one frame less to create and resume on
            # every send).
            pool = self._pool or self._http1_pool()
            try:
                reply = await pool.request(self._create_head + b"%d\r\n\r\n" % len(data) + data)
            except NotSent as exc:  # nothing was written: nothing was sent
                return _network_failure(exc, ambiguous=False)
            except MaybeSent as exc:  # the request was written: the carrier may have created the message
                return _network_failure(exc, ambiguous=True)
            return classify_create_response(reply.status, reply.body, reply.headers.get("retry-after"))
        try:
            async with self._session.post(
                self._messages_url, data=data, headers=self._headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was ever made (refused, DNS, TLS, connect/pool timeout): nothing was sent.
            return _network_failure(exc, ambiguous=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # The request may have been written: the carrier may have created the message.
            return _network_failure(exc, ambiguous=True)
        return classify_create_response(status, raw, retry_after)

    def begin_send(self, request: OutboundRequest) -> InFlight | None:
        """Write the create request now when a kept-alive connection is idle (no task, no coroutine: the sender
        waits on ``answer`` and calls :meth:`finish_send`); None when it cannot (nothing was written: use send)."""
        if self._http1_limit is None:
            return None
        pool = self._pool or self._http1_pool()
        data = self.encode_form(request)
        return pool.begin(self._create_head + b"%d\r\n\r\n" % len(data) + data)

    def finish_send(self, flight: InFlight) -> SendResult:
        """What came of a request :meth:`begin_send` wrote, once its ``answer`` is done: classified as send does
        (a written request that got no complete answer is MaybeSent: ambiguous)."""
        try:
            reply = flight.reply()
        except MaybeSent as exc:
            return _network_failure(exc, ambiguous=True)
        return classify_create_response(reply.status, reply.body, reply.headers.get("retry-after"))

    def _http1_pool(self) -> Http1Pool:
        assert self._http1_limit is not None
        pool = self._pool = Http1Pool(self._base_url, limit=self._http1_limit, connect_timeout=self._connect_timeout,
                                      read_timeout=self._timeout.sock_read or 15.0)
        return pool

    async def close(self) -> None:
        """Close the client's own connection pool, if it has one (the aiohttp session belongs to the caller)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
