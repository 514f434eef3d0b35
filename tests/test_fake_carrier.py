"""The loopback fake carrier, driven by the real TwilioClient over real sockets, plus its window helper."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl

import aiohttp
import orjson
import pytest
from aiohttp import web

from engine.providers import OutboundRequest
from engine.providers.twilio import TwilioClient, basic_authorization, validate_twilio_signature
from engine.testing import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    AcceptedRecord,
    FakeCarrier,
    max_per_sender_by_sender,
    max_per_sender_in_window,
    run_fake_carrier,
)
from tests.helpers.polling import wait_until

DID = "+15557650001"
TO = "+15551230001"


class CallbackSink:
    """A tiny loopback app standing in for the engine's status webhook."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
        self.fail_next = 0  # answer this many callbacks with 503 first
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        await self.received.put((form, request.headers.get("X-Twilio-Signature", "")))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/twilio/status", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        # A query string on purpose: Twilio signs the URL exactly as configured, query included.
        self.url = f"http://127.0.0.1:{port}/twilio/status?app=7&x=a%20b"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def next(self, timeout: float = 5.0) -> tuple[dict[str, str], str]:
        async with asyncio.timeout(timeout):
            return await self.received.get()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def sink() -> AsyncIterator[CallbackSink]:
    s = CallbackSink()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


CarrierFactory = Callable[..., Awaitable[tuple[FakeCarrier, str]]]


@pytest.fixture
async def make_carrier() -> AsyncIterator[CarrierFactory]:
    """Start fake carriers with chosen options; all are stopped after the test."""
    started: list[FakeCarrier] = []

    async def make(**kwargs: object) -> tuple[FakeCarrier, str]:
        kwargs.setdefault("latency", 0.0)
        kwargs.setdefault("seed", 1)
        carrier = FakeCarrier(**kwargs)  # type: ignore[arg-type]
        base = await carrier.start()
        started.append(carrier)
        return carrier, base

    yield make
    for carrier in started:
        await carrier.stop()


def _client(session: aiohttp.ClientSession, base: str, **kwargs: object) -> TwilioClient:
    options: dict[str, object] = {"account_sid": DEFAULT_ACCOUNT_SID, "auth_token": DEFAULT_AUTH_TOKEN}
    options.update(kwargs)
    return TwilioClient(session, base_url=base, **options)  # type: ignore[arg-type]


def _request(to: str = TO, body: str = "Your hold is ready", callback: str | None = None) -> OutboundRequest:
    return OutboundRequest(message_id=1, to=to, from_=DID, body=body, status_callback=callback)


# ---- accept and record ------------------------------------------------------------------------------


async def test_accepts_and_records(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    carrier, base = await make_carrier(callbacks="none")
    result = await _client(session, base).send(_request(body="Hi & bye ✓"))
    assert result.ok and result.http_status == 201
    assert result.provider_status == "queued"
    sid = result.provider_message_id
    assert sid is not None and sid.startswith("SM") and len(sid) == 34
    [record] = carrier.records
    assert (record.sid, record.from_, record.to, record.body) == (sid, DID, TO, "Hi & bye ✓")
    assert record.final_status == "delivered" and record.error_code is None
    assert record.messaging_service_sid is None and record.status_callback is None

    async with session.get(f"{base}/_fake/messages") as resp:
        rows = orjson.loads(await resp.read())
    assert rows == [
        {
            "t": record.t,
            "sid": sid,
            "from": DID,
            "to": TO,
            "body": "Hi & bye ✓",
            "final_status": "delivered",
            "error_code": None,
            "validity_period": None,
        }
    ]
    async with session.get(f"{base}/_fake/stats") as resp:
        assert orjson.loads(await resp.read()) == {
            "accepted": 1,
            "rejected": 0,
            "callbacks_sent": 0,
            "callbacks_failed": 0,
        }
    async with session.post(f"{base}/_fake/reset") as resp:
        assert resp.status == 200
    assert carrier.records == [] and carrier.accepted == 0


async def test_reply_looks_like_twilio(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    _, base = await make_carrier()
    url = f"{base}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    headers = {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}
    async with session.post(url, data={"To": TO, "From": DID, "Body": "x"}, headers=headers) as resp:
        assert resp.status == 201
        doc = orjson.loads(await resp.read())
    assert doc["account_sid"] == DEFAULT_ACCOUNT_SID
    assert (doc["to"], doc["from"], doc["body"], doc["status"]) == (TO, DID, "x", "queued")
    assert doc["num_segments"] == "1" and doc["error_code"] is None and doc["error_message"] is None
    assert doc["date_created"].endswith("+0000")
    assert doc["uri"] == f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{doc['sid']}.json"


async def test_messaging_service_only(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    carrier, base = await make_carrier(callbacks="none")
    service = "MG" + "5" * 32
    client = _client(session, base, messaging_service_sid=service)
    request = OutboundRequest(message_id=1, to=TO, from_=None, body="hi", status_callback=None)
    assert (await client.send(request)).error_code == 21701  # no such service
    carrier.add_service(service, ["+16465550101", "+16465550102"])
    assert (await client.send(request)).ok and (await client.send(request)).ok
    # The service picks each sender from its pool, in turn.
    assert [(r.from_, r.messaging_service_sid) for r in carrier.records] == [
        ("+16465550101", service), ("+16465550102", service)]


async def test_many_concurrent_sends(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, sink: CallbackSink
) -> None:
    carrier, base = await make_carrier(callbacks="all", callback_concurrency=8)
    client = _client(session, base)
    results = await asyncio.gather(*(client.send(_request(callback=sink.url)) for _ in range(200)))
    assert all(r.ok for r in results)
    assert len({r.provider_message_id for r in results}) == 200
    await carrier.drain()
    assert sink.received.qsize() == 400
    assert carrier.stats() == {"accepted": 200, "rejected": 0, "callbacks_sent": 400, "callbacks_failed": 0}


# ---- status callbacks ---------------------------------------------------------------------------------


async def test_signed_callbacks_sent_then_delivered(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, sink: CallbackSink
) -> None:
    _, base = await make_carrier(callbacks="all")
    result = await _client(session, base).send(_request(callback=sink.url))
    statuses = []
    for _ in range(2):
        form, signature = await sink.next()
        assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, sink.url, form, signature)
        assert not validate_twilio_signature("wrong-token", sink.url, form, signature)
        assert form["MessageSid"] == form["SmsSid"] == result.provider_message_id
        assert form["AccountSid"] == DEFAULT_ACCOUNT_SID
        assert (form["From"], form["To"], form["ApiVersion"]) == (DID, TO, "2010-04-01")
        assert form["MessageStatus"] == form["SmsStatus"]
        assert "ErrorCode" not in form
        statuses.append(form["MessageStatus"])
    assert statuses == ["sent", "delivered"]


async def test_failure_rate_one_gives_undelivered_with_error_code(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, sink: CallbackSink
) -> None:
    carrier, base = await make_carrier(failure_rate=1.0, callbacks="final")
    client = _client(session, base)
    for _ in range(5):
        assert (await client.send(_request(callback=sink.url))).ok
    for _ in range(5):
        form, signature = await sink.next()
        assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, sink.url, form, signature)
        assert form["MessageStatus"] in {"undelivered", "failed"}  # "final": no "sent" first
        assert form["ErrorCode"] in {"30003", "30005", "30006", "30008"}
    assert all(r.final_status in {"undelivered", "failed"} and r.error_code for r in carrier.records)
    assert any(r.final_status == "undelivered" for r in carrier.records)


async def test_callbacks_none_posts_nothing(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, sink: CallbackSink
) -> None:
    carrier, base = await make_carrier(callbacks="none")
    assert (await _client(session, base).send(_request(callback=sink.url))).ok
    # A callback is scheduled (or not) before the send is answered, and drain() waits until every scheduled one
    # has been posted: after it, a callback that was going to come has come.
    await carrier.drain()
    assert sink.received.empty()
    assert (carrier.callbacks_sent, carrier.callbacks_failed) == (0, 0)
    assert carrier.records[0].status_callback == sink.url


async def test_callback_retried_when_engine_busy(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, sink: CallbackSink
) -> None:
    carrier, base = await make_carrier(callbacks="final")
    sink.fail_next = 2
    assert (await _client(session, base).send(_request(callback=sink.url))).ok
    form, _ = await sink.next()
    assert form["MessageStatus"] == "delivered"
    await carrier.drain()
    assert carrier.callbacks_sent == 1 and carrier.callbacks_failed == 0


# ---- rejections ---------------------------------------------------------------------------------------


async def test_bad_auth_is_401(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    carrier, base = await make_carrier()
    result = await _client(session, base, auth_token="wrong").send(_request())
    assert not result.ok and not result.retryable
    assert (result.http_status, result.error_code) == (401, 20003)
    assert carrier.records == [] and carrier.rejected == 1
    assert await _client(session, base, auth_token="wrong").fetch_account() == (False, "20003: Authenticate")
    assert await _client(session, base).fetch_account() == (True, "Fake carrier account")


async def test_other_accounts_url_is_404(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    other = "AC" + "9" * 32
    _, base = await make_carrier(accounts={DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN, other: "other-token"})
    url = f"{base}/2010-04-01/Accounts/{other}/Messages.json"
    headers = {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}
    async with session.post(url, data={"To": TO, "From": DID, "Body": "x"}, headers=headers) as resp:
        assert resp.status == 404
        assert orjson.loads(await resp.read())["code"] == 20404


ACCOUNT_RESOURCES = [
    ("POST", "/Messages.json"),
    ("GET", ".json"),
    ("GET", "/AvailablePhoneNumbers/US/Local.json"),
    ("GET", "/IncomingPhoneNumbers.json"),
    ("POST", "/IncomingPhoneNumbers.json"),
    ("DELETE", "/IncomingPhoneNumbers/PN0.json"),
]


@pytest.mark.parametrize(("method", "tail"), ACCOUNT_RESOURCES)
async def test_every_account_resource_is_authenticated_by_the_middleware(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, method: str, tail: str
) -> None:
    other = "AC" + "9" * 32
    _, base = await make_carrier(accounts={DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN, other: "other-token"})
    mine = f"{base}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}{tail}"
    cases = [
        (mine, {}, 401),  # no credentials
        (mine, {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, "wrong")}, 401),
        (mine, {"Authorization": "Basic !!not-base64"}, 401),
        (f"{base}/2010-04-01/Accounts/{other}{tail}",  # another account's resource, with my credentials
         {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}, 404),
    ]
    for url, headers, status in cases:
        async with session.request(method, url, headers=headers) as resp:
            assert resp.status == status, (url, headers)
            doc = orjson.loads(await resp.read())
            assert doc["code"] == (20003 if status == 401 else 20404)
            if status == 401:
                assert resp.headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    # Odd scheme casing still authenticates (the slow path), and the control endpoints need no account.
    headers = {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN).replace("Basic", "basic")}
    async with session.get(f"{base}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}.json", headers=headers) as resp:
        assert resp.status == 200
    async with session.get(f"{base}/_fake/stats") as resp:
        assert resp.status == 200 and set(orjson.loads(await resp.read())) == {
            "accepted", "rejected", "callbacks_sent", "callbacks_failed"}


async def test_an_injected_failure_answers_before_authentication(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    carrier, base = await make_carrier()
    carrier.inject(503, count=1)
    result = await _client(session, base, auth_token="wrong").send(_request())
    assert (result.http_status, result.error_code) == (503, 20503)
    result = await _client(session, base, auth_token="wrong").send(_request())
    assert (result.http_status, result.error_code) == (401, 20003)
    assert carrier.rejected == 2 and carrier.stats()["rejected"] == 2


@pytest.mark.parametrize(
    ("to", "body", "code"),
    [
        ("5551230001", "hi", 21211),
        ("+05551230001", "hi", 21211),
        ("+1555", "hi", 21211),
        (TO, "", 21602),
        (TO, "x" * 1601, 21617),
        ("+15005550009", "hi", 21614),
        ("+15005550004", "hi", 21610),
    ],
)
async def test_invalid_requests_are_permanent(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession, to: str, body: str, code: int
) -> None:
    carrier, base = await make_carrier()
    result = await _client(session, base).send(_request(to=to, body=body))
    assert not result.ok and not result.retryable and not result.ambiguous
    assert (result.http_status, result.error_code) == (400, code)
    if code == 21211:
        assert result.error_message == f"The 'To' number {to} is not a valid phone number."
    assert carrier.records == [] and carrier.rejected == 1


async def test_body_of_exactly_1600_is_accepted(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    _, base = await make_carrier()
    assert (await _client(session, base).send(_request(body="x" * 1600))).ok


async def test_missing_from_and_service_is_21603(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    _, base = await make_carrier()
    request = OutboundRequest(message_id=1, to=TO, from_=None, body="hi", status_callback=None)
    result = await _client(session, base).send(request)
    assert (result.http_status, result.error_code, result.retryable) == (400, 21603, False)


# ---- fault injection ----------------------------------------------------------------------------------


async def test_injected_429_is_retryable_with_retry_after(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    carrier, base = await make_carrier()
    client = _client(session, base)
    carrier.inject(429, count=2, retry_after=2.5)
    for _ in range(2):
        result = await client.send(_request())
        assert not result.ok and result.retryable and not result.ambiguous
        assert (result.http_status, result.error_code, result.retry_after) == (429, 20429, 2.5)
    assert (await client.send(_request())).ok
    assert len(carrier.records) == 1 and carrier.rejected == 2


async def test_faults_over_http(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    _, base = await make_carrier()
    client = _client(session, base)
    async with session.post(f"{base}/_fake/faults", json={"status": 503, "count": 1, "code": 20503}) as resp:
        assert resp.status == 200
    result = await client.send(_request())
    assert result.retryable and (result.http_status, result.error_code) == (503, 20503)
    async with session.post(f"{base}/_fake/faults", json={"status": 429, "count": 1}) as resp:
        assert resp.status == 200
    result = await client.send(_request())
    assert result.retryable and result.retry_after == 1.0
    async with session.post(f"{base}/_fake/faults", json={"count": 1}) as resp:
        assert resp.status == 400
    assert (await client.send(_request())).ok


async def test_reset_over_http_also_drops_pending_faults(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    carrier, base = await make_carrier(callbacks="none")
    carrier.inject(500, count=5)
    carrier.hang(5, 30.0)
    assert not (await _client(session, base).send(_request())).ok
    async with session.post(f"{base}/_fake/reset") as resp:
        assert (resp.status, orjson.loads(await resp.read())) == (200, {"ok": True})
    assert (await _client(session, base, timeout=5.0).send(_request())).ok
    assert carrier.stats() == {"accepted": 1, "rejected": 0, "callbacks_sent": 0, "callbacks_failed": 0}


async def test_hang_makes_send_ambiguous(
    make_carrier: CarrierFactory, session: aiohttp.ClientSession
) -> None:
    carrier, base = await make_carrier()
    carrier.hang(1, 0.3)
    client = _client(session, base, timeout=0.1, connect_timeout=0.05)
    result = await client.send(_request())
    assert not result.ok and result.retryable and result.ambiguous
    # The carrier still accepts it after the hang: exactly why a timeout must not be blindly retried.
    await wait_until(lambda: carrier.records, timeout=5, what="the carrier to accept the message after its hang")


async def test_stop_cuts_a_hang_short(make_carrier: CarrierFactory, session: aiohttp.ClientSession) -> None:
    carrier, base = await make_carrier()
    carrier.hang(1, 30.0)
    client = _client(session, base, timeout=5.0)
    sends = {body: asyncio.create_task(client.send(_request(body=body))) for body in ("one", "two")}
    # One hang for two requests: the first to arrive takes it, so once one is answered the other is known to
    # be at the carrier, hanging.
    done, _ = await asyncio.wait(sends.values(), return_when=asyncio.FIRST_COMPLETED)
    [answered] = [body for body, task in sends.items() if task in done]
    [hung] = [body for body in sends if body != answered]
    assert sends[answered].result().ok
    async with asyncio.timeout(3):
        await carrier.stop()
        result = await sends[hung]
    assert not result.ok and result.retryable
    assert [r.body for r in carrier.records] == [answered]


# ---- lifecycle ----------------------------------------------------------------------------------------


async def test_context_manager_and_repr(session: aiohttp.ClientSession) -> None:
    async with FakeCarrier(latency=0.0) as carrier:
        assert carrier.base_url is not None and carrier.base_url.startswith("http://127.0.0.1:")
        assert DEFAULT_AUTH_TOKEN not in repr(carrier)
        assert (await _client(session, carrier.base_url).send(_request())).ok
    assert len(DEFAULT_ACCOUNT_SID) == 34 and DEFAULT_ACCOUNT_SID.startswith("AC")


async def test_run_fake_carrier_prints_url(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(run_fake_carrier("127.0.0.1", 0, latency=0.0))
    try:
        out: list[str] = []

        def listening() -> bool:
            out.append(capsys.readouterr().out)
            return "listening" in "".join(out)

        await wait_until(listening, timeout=5, interval=0.01, what="the fake carrier to print its URL")
        assert "".join(out).startswith("fake carrier listening on http://127.0.0.1:")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        FakeCarrier(failure_rate=1.5)
    with pytest.raises(ValueError):
        FakeCarrier(callbacks="some")  # type: ignore[arg-type]


# ---- max_per_sender_in_window ------------------------------------------------------------------------


def _records(*sends: tuple[str | None, float]) -> list[AcceptedRecord]:
    return [
        AcceptedRecord(t, f"SM{i}", sender, TO, "x", None, None, "delivered")
        for i, (sender, t) in enumerate(sends)
    ]


@pytest.mark.parametrize(
    ("sends", "expected"),
    [
        ([], 0),
        ([("A", 0.0)], 1),
        ([("A", 0.0), ("A", 60.0)], 1),  # exactly 60 s apart: different windows
        ([("A", 0.0), ("A", 59.999)], 2),
        ([("A", 0.0), ("A", 30.0), ("A", 60.0)], 2),
        ([("A", 0.0), ("A", 30.0), ("A", 59.0), ("A", 60.0)], 3),
        ([("A", 60.0), ("A", 0.0), ("A", 30.0)], 2),  # unsorted input
        ([("A", 0.0), ("B", 1.0), ("A", 2.0), ("B", 3.0), ("B", 4.0)], 3),
        ([("A", 5.0), ("A", 5.0), ("A", 5.0)], 3),  # same instant
        ([(None, 0.0), (None, 1.0), ("A", 2.0)], 1),  # no From: not counted
    ],
)
def test_max_per_sender_in_window(sends: list[tuple[str | None, float]], expected: int) -> None:
    assert max_per_sender_in_window(_records(*sends)) == expected


def test_max_per_sender_by_sender_and_custom_window() -> None:
    records = _records(("A", 0.0), ("A", 1.0), ("A", 2.0), ("B", 0.0), ("B", 10.0))
    assert max_per_sender_by_sender(records) == {"A": 3, "B": 2}
    assert max_per_sender_by_sender(records, window=1.0) == {"A": 1, "B": 1}
    assert max_per_sender_in_window(records, window=2.5) == 3


def test_paced_sender_at_exactly_60_per_minute() -> None:
    # One send per second for ten minutes: every 60 s window holds exactly 60.
    records = _records(*[("A", float(i)) for i in range(600)])
    assert max_per_sender_in_window(records) == 60
    assert max_per_sender_in_window(records + _records(("A", 599.5))) == 61
