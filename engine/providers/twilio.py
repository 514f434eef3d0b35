"""Twilio REST provider: the real wire contract (Messages create, account fetch, webhook signatures).

Everything here speaks exactly what api.twilio.com speaks, so the same client works against the
loopback fake carrier (:mod:`engine.testing`) and production.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

import aiohttp
import orjson
from yarl import URL

from engine.errors import ProviderError
from engine.providers import IncomingNumber, OutboundRequest, SendResult
from engine.providers.http1 import Http1Pool, InFlight, MaybeSent, NotSent, host_header

__all__ = [
    "API_VERSION",
    "INBOUND_WEBHOOK_PATH",
    "NUMBER_KINDS",
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

API_VERSION: Final = "2010-04-01"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# Where the engine receives a carrier account's incoming texts (engine/inbound/mo.py serves it): every DID
# of the account gets this as its SmsUrl, with SmsMethod POST.
INBOUND_WEBHOOK_PATH: Final = "/webhooks/twilio/inbound/{provider_id}"
# AvailablePhoneNumbers subresources the engine searches: local numbers (long codes) and toll-free numbers.
NUMBER_KINDS: Final = ("Local", "TollFree")

TWILIO_FINAL_STATUSES: Final = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})
TWILIO_DELIVERED_STATUSES: Final = frozenset({"delivered", "read"})
TWILIO_FAILED_STATUSES: Final = frozenset({"undelivered", "failed", "canceled"})

# Keep error text from a misbehaving proxy short in logs and results.
_MAX_ERROR_TEXT: Final = 200


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


def _json_or_none(raw: bytes) -> Any:
    """The reply's JSON document, or None when it is not JSON (a proxy's HTML error page, an empty body)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _error_fields(raw: bytes, status: int) -> tuple[int | None, str]:
    """Twilio's error body is {"code", "message", "more_info", "status"}; anything else becomes text."""
    doc = _json_or_none(raw)
    if isinstance(doc, dict):
        code = doc.get("code")
        message = doc.get("message")
        error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if isinstance(code, str) and code.isdigit():
            error_code = int(code)
        if isinstance(message, str) and message:
            return error_code, message
        return error_code, f"HTTP {status}"
    text = raw[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return None, f"HTTP {status}: {text}" if text else f"HTTP {status}"


def classify_create_response(status: int, raw: bytes, retry_after: str | None) -> SendResult:
    """Turn one Messages-create HTTP reply into a SendResult (ok / retryable / permanent)."""
    if 200 <= status < 300:
        doc = _json_or_none(raw)
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
    error_code, message = _error_fields(raw, status)
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


_RESOURCE_SID: Final = re.compile(r"[A-Za-z0-9]{2,64}", re.ASCII)  # safe to put in a URL path as it is


def _incoming_number(item: object) -> IncomingNumber | None:
    """An IncomingPhoneNumber resource from the carrier's JSON; None when it lacks a usable sid or number."""
    if not isinstance(item, dict):
        return None
    sid, number = item.get("sid"), item.get("phone_number")
    if not isinstance(sid, str) or not _RESOURCE_SID.fullmatch(sid) or not isinstance(number, str) or not number:
        return None
    url, method = item.get("sms_url"), item.get("sms_method")
    return IncomingNumber(
        sid=sid,
        phone_number=number,
        sms_url=url if isinstance(url, str) and url else None,
        sms_method=method.upper() if isinstance(method, str) and method else "POST",
    )


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


class TwilioClient:
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

    async def fetch_account(self) -> tuple[bool, str]:
        """Check the credentials: (True, friendly name) or (False, "<code>: <message>")."""
        headers = {"Authorization": self._headers["Authorization"], "Accept": "application/json"}
        try:
            async with self._session.get(self._account_url, headers=headers, timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc)
            return False, f"network error: {type(exc).__name__}" + (f": {detail}" if detail else "")
        if 200 <= status < 300:
            doc = _json_or_none(raw)
            name = doc.get("friendly_name") if isinstance(doc, dict) else None
            return True, name if isinstance(name, str) and name else "OK"
        code, message = _error_fields(raw, status)
        return False, f"{code if code is not None else status}: {message}"

    # ---- phone numbers (DIDs) -----------------------------------------------------------------------

    def _account_url_for(self, tail: str) -> URL:
        return URL(f"{self._base_url}/{API_VERSION}/Accounts/{self.account_sid}/{tail}")

    async def _call(
        self, method: str, url: URL, *, params: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None
    ) -> Any:
        """One account request; the decoded JSON reply (None when empty), or ProviderError."""
        headers = {"Authorization": self._headers["Authorization"], "Accept": "application/json"}
        data = None
        if form is not None:
            headers["Content-Type"] = FORM_CONTENT_TYPE
            data = urlencode(form).encode()
        if params:
            url = url.with_query(params)
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc)
            raise ProviderError(
                f"carrier unreachable: {type(exc).__name__}" + (f": {detail}" if detail else "")
            ) from None
        if not 200 <= status < 300:
            code, message = _error_fields(raw, status)
            raise ProviderError(f"{code}: {message}" if code is not None else message, status=status, code=code)
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderError(f"HTTP {status} with an unreadable body", status=status) from None

    async def search_numbers(
        self, country: str = "US", contains: str | None = None, *, limit: int = 20, kind: str = "Local"
    ) -> list[str]:
        """Numbers available for purchase in *country* (ISO alpha-2), optionally matching *contains*: local ones,
        or toll-free ones with *kind* ``TollFree`` (Twilio's AvailablePhoneNumbers subresources).

        *contains* is Twilio's pattern: digits, letters (keypad digits) and ``*`` for any one digit.
        """
        if kind not in NUMBER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(NUMBER_KINDS)}")
        params = {"SmsEnabled": "true", "PageSize": str(limit)}
        if contains:
            params["Contains"] = contains
        url = self._account_url_for(f"AvailablePhoneNumbers/{country.upper()}/{kind}.json")
        doc = await self._call("GET", url, params=params)
        items = doc.get("available_phone_numbers") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ProviderError("reply without available_phone_numbers")
        return [n for item in items if isinstance(item, dict) and isinstance(n := item.get("phone_number"), str)]

    async def buy_number(self, number: str, *, sms_url: str | None = None) -> str:
        """Buy *number* (E.164) for this account; returns the number the carrier assigned.

        With *sms_url* the number is bought already sending its incoming texts there (SmsMethod POST), in the
        same request: either the number is bought and pointed, or neither.
        """
        form = {"PhoneNumber": number}
        if sms_url is not None:
            form |= {"SmsUrl": sms_url, "SmsMethod": "POST"}
        doc = await self._call("POST", self._account_url_for("IncomingPhoneNumbers.json"), form=form)
        bought = doc.get("phone_number") if isinstance(doc, dict) else None
        if not isinstance(bought, str) or not bought:
            raise ProviderError("purchase reply without phone_number")
        return bought

    async def _owned(self, number: str) -> list[IncomingNumber]:
        """The account's IncomingPhoneNumbers for *number* (Twilio lists at most one; an empty list if none)."""
        url = self._account_url_for("IncomingPhoneNumbers.json")
        doc = await self._call("GET", url, params={"PhoneNumber": number})
        items = doc.get("incoming_phone_numbers") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ProviderError("reply without incoming_phone_numbers")
        return [n for item in items if (n := _incoming_number(item)) is not None and n.phone_number == number]

    async def find_number(self, number: str) -> IncomingNumber | None:
        """The account's number *number* (E.164) with its sid and SMS webhook; None when the account lacks it."""
        owned = await self._owned(number)
        return owned[0] if owned else None

    async def update_sms_url(self, sid: str, sms_url: str, *, method: str = "POST") -> IncomingNumber:
        """Set the SmsUrl and SmsMethod of the account's number *sid* (its "PN…" id); returns the updated number.

        A sid the account does not have is a ProviderError with status 404.
        """
        if not _RESOURCE_SID.fullmatch(sid):
            raise ValueError(f"not a phone number sid: {sid!r}")
        url = self._account_url_for(f"IncomingPhoneNumbers/{sid}.json")
        doc = await self._call("POST", url, form={"SmsUrl": sms_url, "SmsMethod": method})
        updated = _incoming_number(doc)
        if updated is None:
            raise ProviderError("update reply without sid or phone_number")
        return updated

    async def point_number(self, number: str, sms_url: str) -> bool:
        """Make *number* send its incoming texts to *sms_url* by HTTP POST.

        True when it was changed, False when it already did. A number the account does not own is a
        ProviderError with status 404; any other carrier trouble a ProviderError as for every account call.
        """
        found = await self.find_number(number)
        if found is None:
            raise ProviderError(f"{number} is not a number of account {self.account_sid}", status=404)
        if found.sms_url == sms_url and found.sms_method == "POST":
            return False
        await self.update_sms_url(found.sid, sms_url)
        return True

    async def release_number(self, number: str) -> bool:
        """Release *number* from this account; False when the account does not own it."""
        owned = await self._owned(number)
        for item in owned:
            await self._call("DELETE", self._account_url_for(f"IncomingPhoneNumbers/{item.sid}.json"))
        return bool(owned)

    async def close(self) -> None:
        """Close the client's own connection pool, if it has one (the aiohttp session belongs to the caller)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
