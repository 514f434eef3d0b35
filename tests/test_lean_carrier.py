"""The lean benchmark carrier speaks the wire format a sender uses: the real TwilioClient sends through it, its
answers classify as Twilio's would, pipelined requests are answered in order on one kept-alive connection, and
its status callbacks are signed so the engine's own check accepts them, retried on 5xx and dropped connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from benchmarks.lean_carrier import LeanCarrier
from engine.providers import OutboundRequest
from engine.providers.twilio import TwilioClient, basic_authorization, validate_twilio_signature
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

AUTH = basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)


@pytest.fixture
async def carrier() -> AsyncIterator[LeanCarrier]:
    c = LeanCarrier()
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


class Receiver:
    """An aiohttp webhook that checks every callback's signature like the engine does; callback {id} is answered
    with the statuses *plan* lists for it first (0: the connection dropped unanswered), then 204."""

    def __init__(self, plan: dict[str, list[int]] | None = None) -> None:
        self.plan = plan or {}
        self.got: list[dict[str, str]] = []
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        url = f"{self.url}{request.path_qs}"
        if not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, form, request.headers["X-Twilio-Signature"]):
            self.bad_signatures += 1
            return web.Response(status=403)
        planned = self.plan.get(request.match_info["id"])
        if planned:
            status = planned.pop(0)
            if status == 0:  # drop the connection without answering
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=204)
            return web.Response(status=status)
        self.got.append(form)
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/status/{id}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def request(i: int, callback: str | None) -> OutboundRequest:
    return OutboundRequest(message_id=i, to=f"+1212555{i:04d}", from_="+16462000001", body=f"Hello {i}: 100% ok",
                           status_callback=callback, validity_period=600)


async def test_twilio_client_sends_and_the_signed_callback_passes_the_engines_check(carrier: LeanCarrier) -> None:
    async with Receiver() as rx, aiohttp.ClientSession() as session:
        assert carrier.base_url is not None
        client = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                              base_url=carrier.base_url)
        results = await asyncio.gather(*(client.send(request(i, f"{rx.url}/status/{i}")) for i in range(50)))
        assert all(r.ok and r.provider_status == "queued" for r in results)
        sids = [r.provider_message_id or "" for r in results]
        assert len(set(sids)) == 50 and all(s.startswith("SM") and len(s) == 34 for s in sids)
        await carrier.callbacks.drain()
        assert rx.bad_signatures == 0
        assert sorted(f["MessageSid"] for f in rx.got) == sorted(sids)
        first = next(f for f in rx.got if f["MessageSid"] == sids[0])
        assert first["MessageStatus"] == first["SmsStatus"] == "delivered"
        assert first["To"] == "+12125550000" and first["From"] == "+16462000001"
        assert first["AccountSid"] == DEFAULT_ACCOUNT_SID and first["ApiVersion"] == "2010-04-01"
        assert carrier.stats() == {"accepted": 50, "rejected": 0, "callbacks_sent": 50, "callbacks_failed": 0}
        # The record the benchmarks read, decoded as sent.
        async with session.get(f"{carrier.base_url}/_fake/messages") as resp:
            records = orjson.loads(await resp.read())
        assert {r["sid"] for r in records} == set(sids)
        r0 = next(r for r in records if r["sid"] == sids[0])
        assert r0["body"] == "Hello 0: 100% ok" and r0["to"] == "+12125550000" and r0["from"] == "+16462000001"
        assert r0["validity_period"] == 600 and r0["final_status"] == "delivered" and r0["t"] > 0


async def test_errors_are_twilios_and_classify_as_permanent(carrier: LeanCarrier) -> None:
    assert carrier.base_url is not None
    async with aiohttp.ClientSession() as session:
        wrong = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token="nope", base_url=carrier.base_url)
        r = await wrong.send(request(1, None))
        assert not r.ok and not r.retryable and r.http_status == 401 and r.error_code == 20003
        good = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                            base_url=carrier.base_url)
        r = await good.send(OutboundRequest(message_id=2, to="+12125550000", from_="+16462000001", body="",
                                            status_callback=None))
        assert not r.ok and not r.retryable and r.http_status == 400 and r.error_code == 21602
        r = await good.send(OutboundRequest(message_id=3, to="+12125550000", from_=None, body="hi",
                                            status_callback=None))
        assert r.error_code == 21603
        ok, name = await good.fetch_account()
        assert ok and name == "Lean benchmark carrier"
        other = f"{carrier.base_url}/2010-04-01/Accounts/ACother/Messages.json"
        async with session.post(other, data={"To": "+12125550000"},
                                headers={"Authorization": AUTH}) as resp:
            assert resp.status == 404
    assert carrier.stats()["accepted"] == 0 and carrier.stats()["rejected"] == 4


async def test_pipelined_requests_split_anywhere_are_answered_in_order_on_one_connection(
    carrier: LeanCarrier,
) -> None:
    assert carrier.base_url is not None
    host, port = carrier.base_url.removeprefix("http://").split(":")

    def create(n: int) -> bytes:
        body = f"To=%2B1212555{n:04d}&From=%2B16462000001&Body=hi+{n}".encode()
        return (f"POST /2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {AUTH}\r\ncontent-type: application/x-www-form-urlencoded\r\n"
                f"CONTENT-LENGTH: {len(body)}\r\n\r\n").encode() + body

    stream = b"".join(create(n) for n in range(5)) + b"GET /_fake/stats HTTP/1.1\r\nHost: x\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, int(port))
    for i in range(0, len(stream), 7):  # arbitrary split points, headers and bodies cut in half
        writer.write(stream[i : i + 7])
        await writer.drain()
    answers = []
    for _ in range(6):
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answers.append((int(status_line.split()[1]), orjson.loads(await reader.readexactly(length))))
    writer.close()
    await writer.wait_closed()
    assert [s for s, _ in answers] == [201] * 5 + [200]
    assert [doc["to"] for _, doc in answers[:5]] == [f"+1212555{n:04d}" for n in range(5)]
    assert answers[5][1]["accepted"] == 5  # the stats request saw the five before it


async def test_callbacks_retry_5xx_and_dropped_connections_and_give_up_on_4xx(carrier: LeanCarrier) -> None:
    assert carrier.base_url is not None
    plan = {"0": [503], "1": [0], "2": [404], "3": [500, 500, 500, 500]}
    async with Receiver(plan) as rx, aiohttp.ClientSession() as session:
        client = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                              base_url=carrier.base_url)
        results = await asyncio.gather(*(client.send(request(i, f"{rx.url}/status/{i}")) for i in range(6)))
        assert all(r.ok for r in results)
        await carrier.callbacks.drain()
    # 0: 503 then delivered; 1: dropped then delivered; 2: 404, not retried; 3: four 5xx, given up; 4, 5 delivered.
    stats = carrier.stats()
    assert stats["callbacks_sent"] == 4 and stats["callbacks_failed"] == 2
    assert sorted(f["To"][-1] for f in rx.got) == ["0", "1", "4", "5"] and rx.bad_signatures == 0
    assert plan == {"0": [], "1": [], "2": [], "3": []}
