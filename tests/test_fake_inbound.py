"""Numbers and their SmsUrl on the fake carrier, the client that points them, and the fake's inbound texts.

Real HTTP over loopback: the TwilioClient against the fake carrier's IncomingPhoneNumbers endpoints, and
``POST /_fake/inbound`` against a small receiver standing in for the engine's MO webhook.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from engine.errors import ProviderError
from engine.providers import IncomingNumber
from engine.providers.factory import carrier_client
from engine.providers.numbers import point_numbers
from engine.providers.twilio import TwilioClient, basic_authorization, inbound_webhook_url, validate_twilio_signature
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier, NoSmsUrl
from tests.helpers.engine import carrier

DID = "+16462000001"
PHONE = "+13472643707"
OTHER_ACCOUNT = "AC" + "9" * 32
NUMBERS = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/IncomingPhoneNumbers"
AUTH = {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}


class Receiver:
    """Stands in for the engine's MO webhook: records each request and answers ``status``."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[str, str, dict[str, str], dict[str, str]]] = asyncio.Queue()
        self.status = 200
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        await self.requests.put((request.method, request.path_qs, form, dict(request.headers)))
        return web.Response(status=self.status, body=b"<Response/>", content_type="text/xml")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/webhooks/twilio/inbound/{provider_id}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def next(self) -> tuple[str, str, dict[str, str], dict[str, str]]:
        async with asyncio.timeout(5):
            return await self.requests.get()


@pytest.fixture
async def fake() -> AsyncIterator[FakeCarrier]:
    async with carrier(accounts={DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN, OTHER_ACCOUNT: "other-token"}) as c:
        yield c


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


def _client(session: aiohttp.ClientSession, fake: FakeCarrier, token: str = DEFAULT_AUTH_TOKEN) -> TwilioClient:
    return carrier_client(session, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=token,
                          base_url=fake.base_url, timeout=5.0)


async def _inbound(session: aiohttp.ClientSession, fake: FakeCarrier, **form: str) -> tuple[int, dict[str, object]]:
    async with session.post(f"{fake.base_url}/_fake/inbound", data=form) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


# ---- the fake's IncomingPhoneNumbers: SmsUrl set, listed, fetched -----------------------------------


async def test_the_update_endpoint_sets_sms_url_and_method_like_twilio(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    sid = fake.add_number(DID)
    async with session.get(f"{fake.base_url}{NUMBERS}.json", params={"PhoneNumber": DID}, headers=AUTH) as resp:
        (listed,) = (await resp.json())["incoming_phone_numbers"]
    assert (listed["sid"], listed["phone_number"], listed["sms_url"], listed["sms_method"]) == (sid, DID, "", "POST")

    url = "https://engine.example.com/webhooks/twilio/inbound/7?x=a%20b"
    async with session.post(f"{fake.base_url}{NUMBERS}/{sid}.json", data={"SmsUrl": url, "SmsMethod": "POST"},
                            headers=AUTH) as resp:
        assert resp.status == 200
        updated = await resp.json()
    assert [updated[k] for k in ("sid", "phone_number", "sms_url", "sms_method")] == [sid, DID, url, "POST"]
    assert fake.sms_url(DID) == url

    async with session.get(f"{fake.base_url}{NUMBERS}.json", headers=AUTH) as resp:  # the whole list too
        assert [(n["sid"], n["sms_url"]) for n in (await resp.json())["incoming_phone_numbers"]] == [(sid, url)]
    async with session.get(f"{fake.base_url}{NUMBERS}/{sid}.json", headers=AUTH) as resp:
        assert (await resp.json())["sms_url"] == url
    # Fields left out keep their value; SmsMethod alone changes only the method.
    async with session.post(f"{fake.base_url}{NUMBERS}/{sid}.json", data={"SmsMethod": "get"}, headers=AUTH) as resp:
        assert (await resp.json())["sms_method"] == "GET" and fake.sms_url(DID) == url


async def test_the_update_endpoint_refuses_like_twilio(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    sid = fake.add_number(DID)
    theirs = fake.add_number("+16462000002", OTHER_ACCOUNT)
    for target in ("PN" + "0" * 32, theirs):  # unknown sid, another account's number: Twilio's 404
        async with session.post(f"{fake.base_url}{NUMBERS}/{target}.json", data={"SmsUrl": "https://x.example/a"},
                                headers=AUTH) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == 20404
    for form, code in (({"SmsUrl": "ftp://x.example/a"}, 21402), ({"SmsUrl": "not a url"}, 21402),
                       ({"SmsMethod": "PUT"}, 21403)):
        async with session.post(f"{fake.base_url}{NUMBERS}/{sid}.json", data=form, headers=AUTH) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == code
    async with session.post(f"{fake.base_url}{NUMBERS}/{sid}.json", data={"SmsUrl": "https://x.example/a"}) as resp:
        assert resp.status == 401  # the update is an account resource like the others
    assert fake.sms_url(DID) is None and fake.sms_url("+16462000002") is None


# ---- TwilioClient: find, update, point, buy pointed -----------------------------------------------


async def test_the_client_finds_and_points_a_number(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    client = _client(session, fake)
    sid = fake.add_number(DID)
    assert await client.find_number("+16462000009") is None
    found = await client.find_number(DID)
    assert found is not None and (found.sid, found.phone_number, found.sms_url, found.sms_method) == (
        sid, DID, None, "POST")

    url = inbound_webhook_url("https://engine.example.com/", 7)
    assert url == "https://engine.example.com/webhooks/twilio/inbound/7"
    assert await client.point_number(DID, url) is True
    assert fake.sms_url(DID) == url
    assert await client.point_number(DID, url) is False  # already there: no update sent
    updated = await client.update_sms_url(sid, url, method="GET")
    assert updated.sms_method == "GET"
    assert await client.point_number(DID, url) is True  # the method is part of "pointed"
    assert (await client.find_number(DID)) == IncomingNumber(sid, DID, url, "POST")

    with pytest.raises(ProviderError) as not_ours:
        await client.point_number("+16462000009", url)
    assert not_ours.value.status == 404 and "+16462000009" in str(not_ours.value)
    with pytest.raises(ProviderError) as gone:
        await client.update_sms_url("PN" + "0" * 32, url)
    assert gone.value.status == 404 and gone.value.code == 20404
    with pytest.raises(ProviderError) as bad_url:
        await client.update_sms_url(sid, "nowhere")
    assert bad_url.value.code == 21402
    with pytest.raises(ProviderError) as refused:
        await _client(session, fake, token="wrong").point_number(DID, url)
    assert refused.value.status == 401


async def test_buying_with_an_sms_url_points_the_number_in_the_same_request(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    client = _client(session, fake)
    url = "https://engine.example.com/webhooks/twilio/inbound/3"
    assert await client.buy_number("+13475550143", sms_url=url) == "+13475550143"
    assert fake.sms_url("+13475550143") == url
    assert await client.buy_number("+13475550144") == "+13475550144"
    assert fake.sms_url("+13475550144") is None
    with pytest.raises(ProviderError) as bad:  # a bad SmsUrl: nothing bought
        await client.buy_number("+13475550145", sms_url="nowhere")
    assert bad.value.code == 21402 and "+13475550145" not in fake.numbers
    assert await client.release_number("+13475550143") is True
    assert fake.sms_url("+13475550143") is None


async def test_point_numbers_reports_each_number_and_stops_on_refused_credentials(
    fake: FakeCarrier, session: aiohttp.ClientSession
) -> None:
    url = "https://engine.example.com/webhooks/twilio/inbound/1"
    mine = [f"+1646200{i:04d}" for i in range(6)]
    for number in mine:
        fake.add_number(number)
    await _client(session, fake).point_number(mine[0], url)
    report = await point_numbers(_client(session, fake), [*mine, "+16469990000", mine[1]], url, concurrency=3)
    assert report.pointed == tuple(mine[1:]) and report.unchanged == (mine[0],)
    assert list(report.failed) == ["+16469990000"] and "not a number of account" in report.failed["+16469990000"]
    assert not report.ok and report.as_json()["sms_url"] == url
    assert all(fake.sms_url(n) == url for n in mine)

    refused = await point_numbers(_client(session, fake, token="wrong"), mine, url, concurrency=1)
    assert list(refused.failed) == mine and refused.pointed == refused.unchanged == ()
    first, *rest = refused.failed.values()
    assert "20003" in first and all(why == f"carrier refused the credentials: {first}" for why in rest)  # not tried


# ---- POST /_fake/inbound ------------------------------------------------------------------------


async def test_inbound_without_an_sms_url_is_404(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    fake.add_number(DID)
    for to in (DID, "+16469990000"):  # owned but not pointed; nobody's number
        status, body = await _inbound(session, fake, From=PHONE, To=to, Body="STOP")
        assert status == 404 and to in str(body["error"])
    with pytest.raises(NoSmsUrl):
        await fake.send_inbound(PHONE, DID, "STOP")
    status, body = await _inbound(session, fake, To=DID, Body="STOP")
    assert status == 400 and "From" in str(body["error"])
    status, _ = await _inbound(session, fake, From=PHONE, To=DID, MessageSid="SM/../x")
    assert status == 400
    async with session.post(f"{fake.base_url}/_fake/inbound", data=b"From=+13472643707&To=+16469990000") as resp:
        assert resp.status == 404 and "+16469990000 has no SmsUrl" in (await resp.json())["error"]  # curl -d
    assert fake.inbound_sent == []


async def test_inbound_sends_a_signed_twilio_webhook_and_echoes_the_answer(
    fake: FakeCarrier, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sid = fake.add_number(DID)
    url = inbound_webhook_url(receiver.base, 5) + "?tenant=a%20b"  # a query string: signed exactly as configured
    await _client(session, fake).update_sms_url(sid, url)

    status, body = await _inbound(session, fake, From=PHONE, To=DID, Body="Stop ✋")
    assert status == 200
    message_sid = str(body["message_sid"])
    assert body == {"message_sid": message_sid, "status": 200} and re.fullmatch(r"SM[0-9a-f]{32}", message_sid)
    method, path_qs, form, headers = await receiver.next()
    assert (method, path_qs) == ("POST", "/webhooks/twilio/inbound/5?tenant=a%20b")
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, form, headers["X-Twilio-Signature"])
    assert not validate_twilio_signature("other-token", url, form, headers["X-Twilio-Signature"])
    assert {k: form[k] for k in ("MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumSegments",
                                 "NumMedia", "SmsStatus", "ApiVersion")} == {
        "MessageSid": message_sid, "SmsSid": message_sid, "AccountSid": DEFAULT_ACCOUNT_SID, "From": PHONE,
        "To": DID, "Body": "Stop ✋", "NumSegments": "1", "NumMedia": "0", "SmsStatus": "received",
        "ApiVersion": "2010-04-01"}
    token = headers["I-Twilio-Idempotency-Token"]
    assert token and headers["Content-Type"].startswith("application/x-www-form-urlencoded")

    # The same MessageSid again is a retried webhook: same form, same idempotency token.
    receiver.status = 503
    status, body = await _inbound(session, fake, From=PHONE, To=DID, Body="Stop ✋", MessageSid=message_sid)
    assert (status, body) == (200, {"message_sid": message_sid, "status": 503})  # the receiver's answer, echoed
    _, _, again, again_headers = await receiver.next()
    assert again == form and again_headers["I-Twilio-Idempotency-Token"] == token

    receiver.status = 403
    assert (await fake.send_inbound(PHONE, DID, "x" * 200)).status == 403
    _, _, long_form, _ = await receiver.next()
    assert long_form["NumSegments"] == "2" and long_form["MessageSid"] != message_sid
    assert [d.status for d in fake.inbound_sent] == [200, 503, 403]


async def test_inbound_with_sms_method_get_signs_the_query_string(
    fake: FakeCarrier, session: aiohttp.ClientSession, receiver: Receiver
) -> None:
    sid = fake.add_number(DID)
    url = inbound_webhook_url(receiver.base, 5)
    await _client(session, fake).update_sms_url(sid, url, method="GET")
    delivery = await fake.send_inbound(PHONE, DID, "HELP me")
    method, path_qs, _, headers = await receiver.next()
    assert method == "GET" and delivery.status == 200
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, receiver.base + path_qs, {}, headers["X-Twilio-Signature"])
    assert "Body=HELP+me" in path_qs and f"MessageSid={delivery.message_sid}" in path_qs


async def test_inbound_to_an_unreachable_sms_url_is_502(fake: FakeCarrier, session: aiohttp.ClientSession) -> None:
    async with Receiver() as gone:
        url = inbound_webhook_url(gone.base, 1)
    sid = fake.add_number(DID)
    await _client(session, fake).update_sms_url(sid, url)
    status, body = await _inbound(session, fake, From=PHONE, To=DID, Body="hi")
    assert status == 502 and body["status"] is None and body["error"]
    assert str(body["message_sid"]).startswith("SM")
