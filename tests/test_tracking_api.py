"""The tracking calls over real loopback HTTP against a real database: GET /api/messages (filters, keyset pages),
GET /api/message (the status timeline) and POST /api/resend, with the real engine and fake carrier where messages
must really go out."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.api.carousel import CarouselApi
from engine.config import Settings
from engine.providers.twilio import twilio_signature
from engine.store.tracking import STATES_BY_STATUS, encode_cursor
from engine.testing import DEFAULT_AUTH_TOKEN, FakeCarrier
from tests.helpers.database import wait_final
from tests.helpers.engine import FakeApp, add_fake_app, carrier, engine_running
from tests.helpers.polling import wait_until
from tests.helpers.tracking import expected_ids, insert_messages

DID = "+16462000001"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Client:
    """Calls /api/<name> of an engine (a test server or the running engine) as one application."""

    http: aiohttp.ClientSession | TestClient[web.Request, web.Application]
    base: str
    key: str

    async def call(self, name: str, /, *, method: str = "GET", **params: str) -> tuple[int, Any]:
        fields = {"api_key": self.key, **params}
        if method == "GET":
            resp = await self.http.get(f"{self.base}/api/{name}", params=fields)
        else:
            resp = await self.http.post(f"{self.base}/api/{name}", data=fields)
        async with resp:
            assert resp.content_type == "application/json"
            return resp.status, orjson.loads(await resp.read())

    async def ok(self, name: str, /, **params: str) -> Any:
        status, body = await self.call(name, **params)
        assert status == 200, body
        return body

    async def error(self, name: str, expect: int, /, **params: str) -> str:
        got, body = await self.call(name, **params)
        assert got == expect, body
        message: str = body["error"]
        return message


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[tuple[Client, Client]]:
    """Two applications' clients on one API server (no engine: rows are written directly)."""
    lib = await add_fake_app(pool, "http://127.0.0.1:9", name="lib", numbers=[DID])
    other = await add_fake_app(pool, "http://127.0.0.1:9", name="other", numbers=["+16462000002"])
    handlers = CarouselApi(pool, Settings(), cache_seconds=0, clock=lambda: NOW)
    app = web.Application()
    app.add_routes(handlers.routes())
    async with TestClient(TestServer(app)) as client:
        yield Client(client, "", lib.api_key), Client(client, "", other.api_key)


# ---- the list ------------------------------------------------------------------------------------------------

_STATES = [s for states in STATES_BY_STATUS.values() for s in states]
_STATUS = {s: code for code, states in STATES_BY_STATUS.items() for s in states}


async def _history(pool: asyncpg.Pool, n: int = 400) -> list[dict[str, Any]]:
    """*n* messages of app 'lib' and 50 of 'other', with spread phones, states, types, tags, jobs and times (several
    per timestamp, so the list's tie-break on id is exercised)."""
    rnd = random.Random(7)
    apps = {r["name"]: r["id"] for r in await pool.fetch("SELECT id, name FROM engine_app")}
    jobs = [await pool.fetchval("INSERT INTO engine_job (app_id, source) VALUES ($1, 'api') RETURNING id",
                                apps["lib"]) for _ in range(3)]
    rows: list[dict[str, Any]] = []
    for i in range(n + 50):
        app = "lib" if i < n else "other"
        state = rnd.choice(_STATES)
        rows.append({
            "app_id": apps[app], "recipient": f"+1212555{rnd.randrange(8):04d}".replace("555", "20" + str(i % 3)),
            "body": f"message {i}", "state": state, "status": _STATUS[state],
            "type": rnd.choice([None, "reminder", "registration"]), "tag": rnd.choice([None, None, "t1", "t2"]),
            "job_id": rnd.choice([None, *jobs]) if app == "lib" else None,
            "created_at": NOW - timedelta(minutes=rnd.randrange(300)),
        })
    return await insert_messages(pool, rows)


async def _walk(client: Client, limit: int, **params: str) -> list[int]:
    """Every page of the list, following next_cursor; the ids in order."""
    ids: list[int] = []
    cursor: str | None = None
    while True:
        body = await client.ok("messages", limit=str(limit), **params, **({"cursor": cursor} if cursor else {}))
        assert len(body["messages"]) <= limit
        ids += [int(m["message_id"]) for m in body["messages"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


async def test_list_filters_match_the_rows_newest_first(api: tuple[Client, Client], pool: asyncpg.Pool) -> None:
    lib, _ = api
    rows = await _history(pool)
    app_id = rows[0]["app_id"]
    job = next(r["job_id"] for r in rows if r["job_id"] is not None)
    phone = rows[0]["recipient"]
    since, until = NOW - timedelta(minutes=200), NOW - timedelta(minutes=100)
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({}, {}),
        ({"phone_number": phone[2:]}, {"recipient": phone}),  # written without +1: normalised
        ({"status": "2"}, {"states": set(STATES_BY_STATUS[2])}),
        ({"status": "0,delivered"}, {"states": {*STATES_BY_STATUS[0], "delivered"}}),
        ({"status": "Undelivered"}, {"states": {"undelivered"}}),
        ({"type": "reminder"}, {"type": "reminder"}),
        ({"tag": "t2"}, {"tag": "t2"}),
        ({"job_id": str(job)}, {"job_id": job}),
        ({"since": since.isoformat()}, {"since": since}),
        ({"until": until.isoformat()}, {"until": until}),
        ({"since": since.isoformat(), "until": until.isoformat(), "status": "1,4", "type": "registration"},
         {"since": since, "until": until, "states": {"delivered", "sent"}, "type": "registration"}),
        ({"phone_number": phone, "tag": "t1", "job_id": str(job)}, {"recipient": phone, "tag": "t1", "job_id": job}),
    ]
    for params, want in cases:
        expected = expected_ids(rows, app_id=app_id, **want)
        assert await _walk(lib, 500, **params) == expected, params
        assert await _walk(lib, 7, **params) == expected, params  # paged: no duplicate, no gap
    first = (await lib.ok("messages"))["messages"][0]
    row = next(r for r in rows if r["id"] == int(first["message_id"]))
    assert first["phone_number"] == row["recipient"] and first["body"] == row["body"]
    assert first["state"] == row["state"] and first["status"] == row["status"]
    assert (await lib.ok("messages", limit="500", status="queued,sent"))["next_cursor"] is None


async def test_pages_stay_exact_while_new_messages_arrive(api: tuple[Client, Client], pool: asyncpg.Pool) -> None:
    lib, _ = api
    rows = await _history(pool, 120)
    app_id = rows[0]["app_id"]
    before = expected_ids(rows, app_id=app_id)
    seen: list[int] = []
    cursor: str | None = None
    arrived = 0
    while True:
        body = await lib.ok("messages", limit="10", **({"cursor": cursor} if cursor else {}))
        seen += [int(m["message_id"]) for m in body["messages"]]
        # New messages (created now) between pages: they belong before the first page, never in a later one.
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, '+12125550100', 'new'), "
                           "($1, '+12125550101', 'new')", app_id)
        arrived += 2
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == before  # exactly the messages there were, once each, in order
    top = await lib.ok("messages", limit=str(arrived))
    assert all(m["body"] == "new" for m in top["messages"])


async def test_an_app_sees_only_its_own_messages(api: tuple[Client, Client], pool: asyncpg.Pool) -> None:
    lib, other = api
    rows = await _history(pool, 60)
    lib_ids = {r["id"] for r in rows if r["app_id"] == rows[0]["app_id"]}
    other_ids = {r["id"] for r in rows} - lib_ids
    assert set(await _walk(lib, 500)) == lib_ids
    assert set(await _walk(other, 500)) == other_ids
    mine, theirs = min(lib_ids), min(other_ids)
    assert (await lib.ok("message", message_id=str(mine)))["message_id"] == str(mine)
    for call in ("message", "resend"):
        message = await lib.error(call, 404, message_id=str(theirs), method="POST")
        assert message.startswith("message_id:") and "of this application" in message
    # The other app's phone filter finds nothing of theirs either.
    phone = next(r["recipient"] for r in rows if r["id"] == theirs)
    assert {int(m["message_id"]) for m in (await lib.ok("messages", phone_number=phone, limit="500"))["messages"]} \
        <= lib_ids
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE resent_from IS NOT NULL") == 0


async def test_bad_parameters_are_400_naming_them(api: tuple[Client, Client]) -> None:
    lib, _ = api
    for params, name in (
        ({"status": "3"}, "status"), ({"status": "lost"}, "status"), ({"status": ","}, "status"),
        ({"phone_number": "12"}, "phone_number"), ({"job_id": "x"}, "job_id"), ({"job_id": "0"}, "job_id"),
        ({"since": "the day after"}, "since"), ({"until": "soon-ish"}, "until"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until"), ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"), ({"cursor": "not-a-cursor"}, "cursor"), ({"type": "x" * 65}, "type"),
        ({"tag": "x" * 256}, "tag"),
    ):
        message = await lib.error("messages", 400, **params)
        assert message.startswith(f"{name}:"), (params, message)
    for forged in (base64.urlsafe_b64encode(b"1.2.3").decode(), encode_cursor(NOW, 5)[:-2]):
        assert (await lib.error("messages", 400, cursor=forged)).startswith("cursor:"), forged
    for value in ("", "abc", "-4", "99999999999999999999"):
        assert (await lib.error("message", 400, message_id=value)).startswith("message_id:")
    assert (await lib.error("message", 404, message_id="123456")).startswith("message_id:")
    assert (await lib.error("resend", 400, method="POST", message_id="1", phone_number="555")).startswith(
        "phone_number:")


# ---- the timeline ------------------------------------------------------------------------------------------------


async def _post_status(base: str, provider_id: int, message_id: int, params: dict[str, str]) -> int:
    url = f"{base}/webhooks/twilio/status/{provider_id}/{message_id}"
    headers = {"X-Twilio-Signature": twilio_signature(DEFAULT_AUTH_TOKEN, url, params)}
    async with aiohttp.ClientSession() as s, s.post(url, data=params, headers=headers) as resp:
        return resp.status


async def _final(pool: asyncpg.Pool, message_id: int) -> str | None:
    state: str | None = await pool.fetchval(
        "SELECT state FROM engine_outbound WHERE id = $1 AND final_at IS NOT NULL", message_id)
    return state


@dataclass
class Live:
    """The real engine (API, webhooks, dispatch) on a fake carrier, and a client of app 'lib'."""

    pool: asyncpg.Pool
    fake: FakeCarrier
    app: FakeApp
    client: Client
    base: str

    async def send(self, phone: str, body: str) -> int:
        reply = await self.client.ok("send_message", method="POST", phone_number=phone, body=body)
        (first, *_) = reply["message_ids"].split(",")
        return int(first)

    async def final(self, message_id: int) -> str:
        state = await wait_until(lambda: _final(self.pool, message_id), what=f"message {message_id} final")
        assert state is not None
        return state


@asynccontextmanager
async def live(pool: asyncpg.Pool, db_dsn: str, **carrier_options: Any) -> AsyncIterator[Live]:
    async with carrier(**carrier_options) as fake:
        app = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID], limit_per_min=6000)
        async with engine_running(db_dsn) as run, aiohttp.ClientSession() as http:
            yield Live(pool, fake, app, Client(http, run.base_url, app.api_key), run.base_url)


async def test_timeline_of_a_delivered_message_lists_its_states_and_each_callback(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with live(pool, db_dsn) as eng:
        mid = await eng.send("+13472643707", "Your hold is ready")
        assert await eng.final(mid) == "delivered"
        detail = await eng.client.ok("message", message_id=str(mid))
        assert (detail["state"], detail["status"], detail["sender"], detail["encoding"]) == (
            "delivered", 1, DID, "GSM-7")
        assert detail["body"] == "Your hold is ready" and detail["carrier_sid"].startswith("SM")
        assert detail["provider_status"] == "delivered" and detail["segments"] == 1
        timeline = detail["timeline"]
        times = [datetime.fromisoformat(e["at"]) for e in timeline]
        assert times == sorted(times)
        assert (timeline[0]["event"], timeline[0]["state"]) == ("created", "queued")
        sending = [e for e in timeline if e["state"] == "sending"]
        assert len(sending) == 1 and sending[0]["sender"] == DID and sending[0]["event"] == "engine"
        assert timeline.index(sending[0]) == 1  # the claim itself (queued -> claimed) is not a step
        # The carrier's answer to the send ('queued', unless its 'sent' callback was written first) and each callback.
        carrier_said = [e["provider_status"] for e in timeline if e["event"] == "carrier"]
        assert carrier_said in (["queued", "sent", "delivered"], ["sent", "delivered"])
        assert [(e["state"], e["status"]) for e in timeline if e["event"] == "carrier"][-2:] == [
            ("sent", 4), ("delivered", 1)]
        # A late callback changes nothing but is on the timeline, last.
        pid = await pool.fetchval("SELECT id FROM engine_provider")
        late = {"MessageSid": detail["carrier_sid"], "MessageStatus": "sent"}
        assert await _post_status(eng.base, pid, mid, late) == 204
        after = (await eng.client.ok("message", message_id=str(mid)))["timeline"]
        assert after[:-1] == timeline
        assert {k: after[-1][k] for k in ("event", "state", "status", "provider_status", "applied")} == {
            "event": "callback", "state": "delivered", "status": 1, "provider_status": "sent", "applied": False}
    assert await pool.fetchval("SELECT state FROM engine_outbound WHERE id = $1", mid) == "delivered"


# ---- resend ------------------------------------------------------------------------------------------------------


async def test_resend_inside_the_duplicate_window_is_sent_and_linked(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with live(pool, db_dsn) as eng:
        phone, body = "+13472643707", "Storytime moved to 11"
        first = await eng.send(phone, body)
        assert await eng.final(first) == "delivered"
        # The window is on: the same body again from the app is suppressed as a duplicate …
        again = await eng.send(phone, body)
        assert await eng.final(again) == "suppressed"
        assert await pool.fetchval("SELECT reason FROM engine_outbound WHERE id = $1", again) == "duplicate"
        # … but a person asked for this one: it goes out.
        reply = await eng.client.ok("resend", method="POST", message_id=str(first))
        resent = int(reply["message_id"])
        assert await eng.final(resent) == "delivered"
        row = await pool.fetchrow("SELECT recipient, body, resent_from, reason FROM engine_outbound WHERE id = $1",
                                  resent)
        assert dict(row) == {"recipient": phone, "body": body, "resent_from": first, "reason": None}
        assert [(r.to, r.body) for r in eng.fake.records] == [(phone, body), (phone, body)]
        shown = await eng.client.ok("message", message_id=str(first))
        assert shown["resends"] == [str(resent)]
        assert (await eng.client.ok("message", message_id=str(resent)))["resent_from"] == str(first)
        # To a corrected number, with the original's type, category and tag.
        await pool.execute("UPDATE engine_outbound SET type = 'reminder', tag = 'kids' WHERE id = $1", first)
        fixed = int((await eng.client.ok("resend", method="POST", message_id=str(first),
                                         phone_number="(212) 555-0199"))["message_id"])
        assert await eng.final(fixed) == "delivered"
        row = await pool.fetchrow("SELECT recipient, type, category, tag, resent_from FROM engine_outbound "
                                  "WHERE id = $1", fixed)
        assert dict(row) == {"recipient": "+12125550199", "type": "reminder", "category": "transactional",
                             "tag": "kids", "resent_from": first}


async def test_resend_to_a_blacklisted_phone_is_refused_and_admission_fails_a_queued_one(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with live(pool, db_dsn) as eng:
        first = await eng.send("+13472643707", "Fines are waived this week")
        assert await eng.final(first) == "delivered"
        assert await eng.client.ok("blacklist", method="POST", phone_number="+13472643707")
        status, body = await eng.client.call("resend", method="POST", message_id=str(first))
        assert status == 409 and body["reason"] == "blacklisted" and "opted out" in body["error"]
        count = await pool.fetchval("SELECT count(*) FROM engine_outbound")
        assert count == 1  # nothing queued
        # To a corrected number that is fine, it is sent.
        ok = int((await eng.client.ok("resend", method="POST", message_id=str(first),
                                      phone_number="+12125550199"))["message_id"])
        assert await eng.final(ok) == "delivered"
    # A resend queued before its phone opted out: admission (not the duplicate rule) refuses it when it is claimed.
    async with carrier() as fake:
        await pool.execute("UPDATE engine_provider SET base_url = $1", fake.base_url)
        queued = await _resend_offline(pool, ok)
        await pool.execute("INSERT INTO engine_blacklist (app_id, phone) SELECT app_id, recipient FROM engine_outbound "
                           "WHERE id = $1", queued)
        async with engine_running(db_dsn):
            state = await wait_until(lambda: _final(pool, queued), what="the queued resend final")
        assert state == "failed"
        assert await pool.fetchval("SELECT reason FROM engine_outbound WHERE id = $1", queued) == "blacklisted"
        assert fake.records == []


async def _resend_offline(pool: asyncpg.Pool, message_id: int) -> int:
    from engine.store import tracking

    result = await tracking.resend(pool, message_id, now=datetime.now(UTC))
    assert isinstance(result, tracking.Resent), result
    return result.message_id


async def test_resend_refusals_say_why_and_queue_nothing(api: tuple[Client, Client], pool: asyncpg.Pool) -> None:
    lib, _ = api
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")

    async def message(state: str, **columns: Any) -> int:
        names = ", ".join(columns)
        marks = "".join(f", ${i + 3}" for i in range(len(columns)))
        mid: int = await pool.fetchval(
            f"INSERT INTO engine_outbound (app_id, state{', ' if columns else ''}{names}, recipient, body) "
            f"VALUES ($1, $2{marks}, '+13472643707', 'x') RETURNING id", app_id, state, *columns.values())
        return mid

    cases = [
        (await message("queued"), "not_sent"),
        (await message("claimed"), "not_sent"),
        (await message("delivered", expires_at=NOW - timedelta(seconds=1)), "expired"),
    ]
    async with pool.acquire() as conn:
        await conn.execute("SELECT set_config('engine.compliance', 'on', false)")  # as the engine's own code does
        stop = await conn.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, kind, state) "
                                   "VALUES ($1, '+13472643707', 'STOP ok', 'compliance', 'delivered') RETURNING id",
                                   app_id)
    cases.append((stop, "compliance"))
    await pool.execute("UPDATE engine_app SET flood_limit = 4, flood_period = interval '1 hour' WHERE id = $1", app_id)
    # Four messages to the phone in the hour already (the engine's STOP answer is not counted).
    cases.append((await message("delivered"), "flood_limit"))
    total = await pool.fetchval("SELECT count(*) FROM engine_outbound")
    for mid, reason in cases:
        status, body = await lib.call("resend", method="POST", message_id=str(mid))
        assert (status, body.get("reason")) == (409, reason), body
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == total
    # Not yet expired: resent with the same expiry.
    await pool.execute("UPDATE engine_app SET flood_limit = NULL, flood_period = NULL")
    later = NOW + timedelta(hours=1)
    fine = await message("failed", expires_at=later)
    new = int((await lib.ok("resend", method="POST", message_id=str(fine)))["message_id"])
    row = await pool.fetchrow("SELECT state, expires_at, resent_from FROM engine_outbound WHERE id = $1", new)
    assert dict(row) == {"state": "queued", "expires_at": later, "resent_from": fine}


async def test_resending_a_part_resends_the_whole_split_message(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        app = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID], limit_per_min=6000)
        await pool.execute("UPDATE engine_provider SET single_sms = true")  # long bodies go out as (i/n) parts
        async with engine_running(db_dsn) as run, aiohttp.ClientSession() as http:
            client = Client(http, run.base_url, app.api_key)
            body = "Your reading list for the summer: " + " ".join(f"book{i}" for i in range(60))
            reply = await client.ok("send_message", method="POST", phone_number="+13472643707", body=body)
            parts = [int(x) for x in reply["message_ids"].split(",")]
            assert len(parts) >= 3
            await wait_final(pool, len(parts))
            resent = int((await client.ok("resend", method="POST", message_id=str(parts[1])))["message_id"])
            await wait_final(pool, 2 * len(parts))
        rows = await pool.fetch("SELECT id, body, part_of, resent_from, state FROM engine_outbound WHERE id = $1 "
                                "OR part_of = $1 ORDER BY id", resent)
        originals = await pool.fetch("SELECT id, body FROM engine_outbound WHERE id = ANY($1::bigint[]) ORDER BY id",
                                     parts)
        assert [r["body"] for r in rows] == [r["body"] for r in originals]
        assert [r["resent_from"] for r in rows] == parts
        assert [r["part_of"] for r in rows] == [None] + [resent] * (len(parts) - 1)
        assert {r["state"] for r in rows} == {"delivered"}
        assert len(fake.records) == 2 * len(parts)
