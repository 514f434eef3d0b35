"""A loopback fake carrier: a real aiohttp server speaking Twilio's Messages API and status callbacks.

Tests, the demo and the benchmarks send through the real :class:`~engine.providers.twilio.TwilioClient`
to it, so the wire contract is exercised end to end; the request path is kept lean for throughput runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
import phonenumbers
from aiohttp import web

from engine.providers.twilio import API_VERSION, FORM_CONTENT_TYPE, basic_authorization, twilio_signature

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "AcceptedRecord",
    "CallbackMode",
    "FakeCarrier",
    "available_numbers",
    "max_per_sender_by_sender",
    "max_per_sender_in_window",
    "run_fake_carrier",
]

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID: Final = "ACfake" + "0" * 28  # 34 characters, like a real Account SID
DEFAULT_AUTH_TOKEN: Final = "fake-token"

CallbackMode = Literal["all", "final", "none"]

E164: Final = re.compile(r"\+[1-9]\d{6,14}")
MAX_BODY_CHARS: Final = 1600
# Twilio's magic test numbers, kept so tests can provoke these permanent errors on demand.
NOT_MOBILE_NUMBER: Final = "+15005550009"
UNSUBSCRIBED_NUMBER: Final = "+15005550004"
# How accepted-but-failed messages end, with the ErrorCode Twilio reports for them.
FAILURE_OUTCOMES: Final[tuple[tuple[str, int], ...]] = (
    ("undelivered", 30003),  # unreachable destination handset
    ("undelivered", 30005),  # unknown destination handset
    ("undelivered", 30006),  # landline or unreachable carrier
    ("failed", 30008),  # unknown error
)
CALLBACK_ATTEMPTS: Final = 4
CALLBACK_BACKOFF: Final = 0.05  # seconds, doubled per attempt: 0.05, 0.1, 0.2
CALLBACK_TIMEOUT: Final = 10.0

_JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    """One message the fake accepted, with the final status it was destined for."""

    t: float  # wall clock (time.time()) at accept
    sid: str
    from_: str | None
    to: str
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    final_status: str
    error_code: int | None = None


@dataclass(slots=True)
class _Fault:
    """A pending injected failure (or hang) for the next ``remaining`` create requests."""

    remaining: int
    status: int = 0
    retry_after: float | None = None
    code: int | None = None
    seconds: float = 0.0


# Twilio's Contains pattern: letters stand for their phone keypad digits, '*' for any one digit.
_KEYPAD: Final = str.maketrans(
    {c: d for d, letters in zip("23456789", ("ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"), strict=True)
     for c in letters + letters.lower()}
)
_CONTAINS: Final = re.compile(r"\+?[0-9A-Za-z*]{1,16}")
NANP_REGIONS: Final = frozenset({"US", "CA"})


def _fill(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "*" else ch for ch in pattern)


def available_numbers(
    rng: random.Random, country: str, contains: str | None, count: int, taken: Iterable[str] = ()
) -> list[str]:
    """Valid local numbers of *country* (US or CA) matching Twilio's *contains* pattern, like its search.

    A pattern starting '+' must match the start of the E.164 number; otherwise it may appear anywhere
    in the national number. Numbers in *taken* and 555 test numbers are never offered.
    """
    exclude = set(taken)
    pattern = (contains or "").translate(_KEYPAD)
    anchored = pattern.startswith("+")
    if anchored:
        pattern = pattern[1:]
        if not pattern.startswith("1"):
            return []
        pattern = pattern[1:]
    if len(pattern) > 10:
        return []
    found: list[str] = []
    for _ in range(200 * count):
        if len(found) >= count:
            break
        # Short patterns are usually area codes: put them first half of the time.
        prefer_start = anchored or (len(pattern) <= 3 and rng.random() < 0.5)
        offset = 0 if prefer_start else rng.randrange(0, 11 - len(pattern))
        national = _fill(rng, "*" * offset + pattern + "*" * (10 - offset - len(pattern)))
        number = "+1" + national
        if national.startswith("555") or number in exclude:
            continue
        parsed = phonenumbers.parse(number)
        if phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == country:
            exclude.add(number)
            found.append(number)
    return found


def _error_body(status: int, code: int, message: str) -> bytes:
    return orjson.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A Twilio-shaped error reply."""
    return web.Response(
        status=status, body=_error_body(status, code, message), content_type=_JSON, headers=headers
    )


_DEFAULT_FAULT_CODES: Final = {429: 20429, 500: 20500, 503: 20503}
_DEFAULT_FAULT_MESSAGES: Final = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def max_per_sender_by_sender(records: Iterable[AcceptedRecord], window: float = 60.0) -> dict[str, int]:
    """Per From number, the most messages it sent in any half-open window [a, a+window).

    Two sends at t1 <= t2 share a window iff t2 - t1 < window. Records without a From are skipped.
    Sort then two pointers per sender: O(n log n), which is what proves the 60/min pacing holds.
    """
    times: defaultdict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.from_ is not None:
            times[record.from_].append(record.t)
    result: dict[str, int] = {}
    for sender, ts in times.items():
        ts.sort()
        best = 0
        left = 0
        for right, t in enumerate(ts):
            while t - ts[left] >= window:
                left += 1
            best = max(best, right - left + 1)
        result[sender] = best
    return result


def max_per_sender_in_window(records: Iterable[AcceptedRecord], window: float = 60.0) -> int:
    """The highest count any single From sent in any window of ``window`` seconds (0 if none)."""
    return max(max_per_sender_by_sender(records, window).values(), default=0)


class FakeCarrier:
    """Twilio-compatible loopback carrier with status callbacks, fault injection and a record of sends."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        latency: float = 0.05,
        failure_rate: float = 0.0,
        callbacks: CallbackMode = "all",
        seed: int | None = None,
        callback_concurrency: int = 64,
    ) -> None:
        """Configure only; sockets open in :meth:`start`."""
        if callbacks not in ("all", "final", "none"):
            raise ValueError(f"callbacks must be 'all', 'final' or 'none', not {callbacks!r}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be within [0, 1]")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if callback_concurrency < 1:
            raise ValueError("callback_concurrency must be >= 1")
        self.accounts: dict[str, str] = (
            dict(accounts) if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
        )
        self.latency = latency
        self.failure_rate = failure_rate
        self.callbacks: CallbackMode = callbacks
        self.callback_concurrency = callback_concurrency
        self._rng = random.Random(seed)
        # Exact header value -> account sid: one dict lookup authenticates a well-formed request.
        self._auth = {basic_authorization(sid, token): sid for sid, token in self.accounts.items()}

        self.records: list[AcceptedRecord] = []
        self.accepted = 0
        self.rejected = 0
        self.callbacks_sent = 0
        self.callbacks_failed = 0
        self._faults: deque[_Fault] = deque()
        self._hangs: deque[_Fault] = deque()
        # Numbers bought through IncomingPhoneNumbers: number -> (account sid, PN sid).
        self.numbers: dict[str, tuple[str, str]] = {}

        self._queue: asyncio.Queue[tuple[float, AcceptedRecord, str]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._callback_session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._date_second = -1
        self._date_text = ""
        self.base_url: str | None = None

    def __repr__(self) -> str:
        return (
            f"FakeCarrier(base_url={self.base_url!r}, accounts={sorted(self.accounts)!r}, "
            f"accepted={self.accepted}, rejected={self.rejected})"
        )

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the base URL, e.g. http://127.0.0.1:54321."""
        if self._runner is not None:
            raise RuntimeError("FakeCarrier already started")
        self._stopping.clear()
        app = web.Application()
        prefix = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(f"{prefix}/Messages.json", self._create_message)
        app.router.add_get(f"{prefix}.json", self._fetch_account)
        app.router.add_get(f"{prefix}/AvailablePhoneNumbers/{{country}}/Local.json", self._available_numbers)
        app.router.add_get(f"{prefix}/IncomingPhoneNumbers.json", self._list_numbers)
        app.router.add_post(f"{prefix}/IncomingPhoneNumbers.json", self._buy_number)
        app.router.add_delete(f"{prefix}/IncomingPhoneNumbers/{{sid}}.json", self._release_number)
        app.router.add_post("/_fake/faults", self._http_faults)
        app.router.add_get("/_fake/messages", self._http_messages)
        app.router.add_get("/_fake/stats", self._http_stats)
        app.router.add_post("/_fake/reset", self._http_reset)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        display_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{display_host}:{bound_port}"
        self._callback_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.callback_concurrency),
            timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT),
        )
        self._workers = [
            asyncio.create_task(self._callback_worker(), name=f"fake-carrier-callbacks-{i}")
            for i in range(self.callback_concurrency)
        ]
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and drop callbacks not yet delivered; safe to call twice."""
        self._stopping.set()  # wakes hung requests so shutdown is quick
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._callback_session is not None:
            session, self._callback_session = self._callback_session, None
            await session.close()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every status callback scheduled so far has been delivered (or given up on)."""
        await self._queue.join()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- fault injection and bookkeeping ---------------------------------------------------------

    def inject(
        self, status: int, count: int, retry_after: float | None = None, code: int | None = None
    ) -> None:
        """Make the next ``count`` create requests fail with HTTP ``status`` (429 adds Retry-After)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 1:
            raise ValueError("count must be >= 1")
        self._faults.append(_Fault(remaining=count, status=status, retry_after=retry_after, code=code))

    def hang(self, count: int, seconds: float) -> None:
        """Make the next ``count`` create requests wait ``seconds`` before answering (timeout tests)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        self._hangs.append(_Fault(remaining=count, seconds=seconds))

    def reset(self) -> None:
        """Forget records, counters and pending faults (callbacks already scheduled still go out)."""
        self.records.clear()
        self.accepted = self.rejected = self.callbacks_sent = self.callbacks_failed = 0
        self._faults.clear()
        self._hangs.clear()

    def stats(self) -> dict[str, int]:
        """Counters for /_fake/stats."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "callbacks_sent": self.callbacks_sent,
            "callbacks_failed": self.callbacks_failed,
        }

    @staticmethod
    def _take(faults: deque[_Fault]) -> _Fault | None:
        if not faults:
            return None
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.popleft()
        return fault

    def _fault_response(self, fault: _Fault) -> web.Response:
        status = fault.status
        code = fault.code if fault.code is not None else _DEFAULT_FAULT_CODES.get(status, status * 100)
        message = _DEFAULT_FAULT_MESSAGES.get(status, "Injected fault")
        headers = None
        if fault.retry_after is not None:
            headers = {"Retry-After": format(fault.retry_after, "g")}
        elif status == 429:
            headers = {"Retry-After": "1"}
        return _error(status, code, message, headers)

    def _authenticate(self, header: str | None) -> str | None:
        """The account sid the Basic credentials belong to, or None."""
        if header is None:
            return None
        sid = self._auth.get(header)
        if sid is not None:
            return sid
        # Slow path: odd scheme casing or spacing; still a constant-time token comparison.
        auth = None
        with contextlib.suppress(ValueError):
            auth = aiohttp.BasicAuth.decode(header)
        if auth is None:
            return None
        login = str(auth.login)
        token = self.accounts.get(login)
        if token is not None and hmac.compare_digest(token.encode(), str(auth.password).encode()):
            return login
        return None

    def _date(self, now: float) -> str:
        """RFC 2822 date as Twilio formats it, cached per second (one formatdate per second, not per send)."""
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date_text = formatdate(second, usegmt=False).replace("-0000", "+0000")
        return self._date_text

    def _new_sid(self) -> str:
        return f"SM{self._rng.getrandbits(128):032x}"

    def _outcome(self) -> tuple[str, int | None]:
        if self.failure_rate and self._rng.random() < self.failure_rate:
            return self._rng.choice(FAILURE_OUTCOMES)
        return "delivered", None

    # ---- Twilio API ------------------------------------------------------------------------------

    async def _hang_if_asked(self) -> bool:
        """Sleep for an injected hang; True when the carrier is stopping and should answer 503 now."""
        hang = self._take(self._hangs)
        if hang is None:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hang.seconds):
                await self._stopping.wait()
        return self._stopping.is_set()

    def _check_account(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        """Authenticate and make sure the URL's account is the caller's own."""
        account = self._authenticate(request.headers.get("Authorization"))
        if account is None:
            return None, _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if account != request.match_info["account_sid"]:
            return None, _error(404, 20404, f"The requested resource {request.path} was not found")
        return account, None

    def _validate(self, form: Mapping[str, str]) -> web.Response | None:
        """Twilio's create-message validation, with its error codes and wording."""
        to = form.get("To")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not E164.fullmatch(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."
            )
        body = form.get("Body")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        callback = form.get("StatusCallback")
        if callback and not callback.startswith(("http://", "https://")):
            return _error(400, 21609, f"The StatusCallback URL {callback} is not a valid URL.")
        if to == NOT_MOBILE_NUMBER:
            return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
        if to == UNSUBSCRIBED_NUMBER:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        return None

    async def _create_message(self, request: web.Request) -> web.Response:
        if self._faults:
            fault = self._take(self._faults)
            if fault is not None:
                self.rejected += 1
                return self._fault_response(fault)
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            self.rejected += 1
            return failure or _error(401, 20003, "Authenticate")
        raw = await request.read()
        # A hang holds the reply after the whole request arrived, like a slow carrier: the message is
        # still created afterwards even if the client gave up, which is what makes timeouts ambiguous.
        if (self._hangs and await self._hang_if_asked()) or self._stopping.is_set():
            self.rejected += 1
            return _error(503, 20503, "Service Unavailable")
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        invalid = self._validate(form)
        if invalid is not None:
            self.rejected += 1
            return invalid

        now = time.time()
        sid = self._new_sid()
        final_status, error_code = self._outcome()
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        callback = form.get("StatusCallback") or None
        to = form["To"]
        body = form["Body"]
        record = AcceptedRecord(now, sid, from_, to, body, service, callback, final_status, error_code)
        self.records.append(record)
        self.accepted += 1
        if callback is not None and self.callbacks != "none":
            self._queue.put_nowait((asyncio.get_running_loop().time() + self.latency, record, account))
        date = self._date(now)
        reply = {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": body,
            "date_created": date,
            "date_sent": None,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
        }
        return web.Response(status=201, body=orjson.dumps(reply), content_type=_JSON)

    async def _fetch_account(self, request: web.Request) -> web.Response:
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            return failure or _error(401, 20003, "Authenticate")
        reply = {
            "sid": account,
            "friendly_name": "Fake carrier account",
            "status": "active",
            "type": "Full",
            "uri": f"/{API_VERSION}/Accounts/{account}.json",
        }
        return web.Response(body=orjson.dumps(reply), content_type=_JSON)

    # ---- phone numbers ---------------------------------------------------------------------------

    def _number_resource(self, account: str, sid: str, number: str) -> dict[str, Any]:
        return {
            "account_sid": account,
            "sid": sid,
            "phone_number": number,
            "friendly_name": number,
            "capabilities": {"voice": True, "sms": True, "mms": True},
            "uri": f"/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{sid}.json",
        }

    async def _available_numbers(self, request: web.Request) -> web.Response:
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            return failure or _error(401, 20003, "Authenticate")
        country = request.match_info["country"]
        if country not in NANP_REGIONS:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        contains = request.query.get("Contains") or None
        if contains is not None and not _CONTAINS.fullmatch(contains):
            return _error(400, 21421, "Contains must be digits, letters or '*'")
        try:
            size = max(1, min(int(request.query.get("PageSize", "20")), 50))
        except ValueError:
            return _error(400, 20001, "PageSize must be an integer")
        numbers = available_numbers(self._rng, country, contains, size, self.numbers)
        reply = {
            "uri": request.path_qs,
            "available_phone_numbers": [
                {"friendly_name": n, "phone_number": n, "iso_country": country,
                 "capabilities": {"voice": True, "SMS": True, "MMS": True}}
                for n in numbers
            ],
        }
        return web.Response(body=orjson.dumps(reply), content_type=_JSON)

    async def _list_numbers(self, request: web.Request) -> web.Response:
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            return failure or _error(401, 20003, "Authenticate")
        wanted = request.query.get("PhoneNumber")
        items = [
            self._number_resource(owner, sid, number)
            for number, (owner, sid) in self.numbers.items()
            if owner == account and (wanted is None or number == wanted)
        ]
        return web.Response(body=orjson.dumps({"incoming_phone_numbers": items}), content_type=_JSON)

    async def _buy_number(self, request: web.Request) -> web.Response:
        """Buys any valid E.164 number nobody owns yet (a real carrier sells only what it has)."""
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            return failure or _error(401, 20003, "Authenticate")
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace"), keep_blank_values=True))
        number = form.get("PhoneNumber", "")
        if not E164.fullmatch(number):
            return _error(400, 21421, "PhoneNumber is invalid.")
        if number in self.numbers:
            return _error(400, 21422, "PhoneNumber requested is not available")
        sid = f"PN{self._rng.getrandbits(128):032x}"
        self.numbers[number] = (account, sid)
        return web.Response(status=201, body=orjson.dumps(self._number_resource(account, sid, number)),
                            content_type=_JSON)

    async def _release_number(self, request: web.Request) -> web.Response:
        account, failure = self._check_account(request)
        if failure is not None or account is None:
            return failure or _error(401, 20003, "Authenticate")
        sid = request.match_info["sid"]
        for number, (owner, owned_sid) in list(self.numbers.items()):
            if owner == account and owned_sid == sid:
                del self.numbers[number]
                return web.Response(status=204)
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    # ---- status callbacks ------------------------------------------------------------------------

    async def _callback_worker(self) -> None:
        """One of ``callback_concurrency`` workers: the worker count is the concurrency bound."""
        loop = asyncio.get_running_loop()
        while True:
            due, record, account = await self._queue.get()
            try:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._deliver(record, account)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the worker alive; a lost callback is counted, not fatal
                self.callbacks_failed += 1
                log.exception("fake carrier: status callback for %s crashed", record.sid)
            finally:
                self._queue.task_done()

    async def _deliver(self, record: AcceptedRecord, account: str) -> None:
        """Post this message's statuses in order: "sent" (mode all) then its final status."""
        assert record.status_callback is not None
        if self.callbacks == "all":
            await self._post_status(record, account, "sent", None)
        await self._post_status(record, account, record.final_status, record.error_code)

    async def _post_status(
        self, record: AcceptedRecord, account: str, status: str, error: int | None
    ) -> bool:
        """One signed status callback, retried on connection errors and 5xx with a short backoff."""
        session = self._callback_session
        url = record.status_callback
        assert session is not None and url is not None
        params = {
            "MessageSid": record.sid,
            "SmsSid": record.sid,
            "AccountSid": account,
            "To": record.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if record.from_ is not None:
            params["From"] = record.from_
        if record.messaging_service_sid is not None:
            params["MessagingServiceSid"] = record.messaging_service_sid
        if error is not None:
            params["ErrorCode"] = str(error)
        headers = {
            "Content-Type": FORM_CONTENT_TYPE,
            "X-Twilio-Signature": twilio_signature(self.accounts[account], url, params),
            "I-Twilio-Idempotency-Token": f"{record.sid}-{status}",
            "User-Agent": "TwilioProxy/1.1",
        }
        data = urlencode(params).encode()
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                async with session.post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    if resp.status < 400:
                        self.callbacks_sent += 1
                        return True
                    if resp.status < 500:  # the receiver refused it; Twilio does not retry 4xx
                        break
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if attempt + 1 < CALLBACK_ATTEMPTS:
                await asyncio.sleep(CALLBACK_BACKOFF * (2**attempt))
        self.callbacks_failed += 1
        return False

    # ---- control endpoints -----------------------------------------------------------------------

    async def _http_faults(self, request: web.Request) -> web.Response:
        try:
            doc: Any = orjson.loads(await request.read())
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
            count = int(doc.get("count", 1))
            if "hang" in doc:
                self.hang(count, float(doc["hang"]))
            else:
                retry_after = doc.get("retry_after")
                code = doc.get("code")
                self.inject(
                    int(doc["status"]),
                    count,
                    retry_after=float(retry_after) if retry_after is not None else None,
                    code=int(code) if code is not None else None,
                )
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, body=orjson.dumps({"error": str(exc)}), content_type=_JSON)
        return web.Response(body=b'{"ok":true}', content_type=_JSON)

    async def _http_messages(self, request: web.Request) -> web.Response:
        rows = [
            {
                "t": r.t,
                "sid": r.sid,
                "from": r.from_,
                "to": r.to,
                "body": r.body,
                "final_status": r.final_status,
                "error_code": r.error_code,
            }
            for r in self.records
        ]
        return web.Response(body=orjson.dumps(rows), content_type=_JSON)

    async def _http_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type=_JSON)

    async def _http_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=b'{"ok":true}', content_type=_JSON)


async def run_fake_carrier(host: str, port: int, **kwargs: Any) -> None:
    """Serve a FakeCarrier until cancelled (``engine fake-carrier``); prints its URL once listening."""
    carrier = FakeCarrier(**kwargs)
    base_url = await carrier.start(host, port)
    try:
        print(f"fake carrier listening on {base_url}", flush=True)
        await asyncio.Event().wait()
    finally:
        await carrier.stop()
