"""Subscriptions through the HTTP API: web opt-in by texted code, sending to subscribers by tag, cancelling those."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.store import admin
from engine.store import carousel as api_store
from tests.helpers.engine import carrier, engine_running, setup_app

PHONE = "+13472643707"


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str
    key: str
    pool: asyncpg.Pool

    async def call(self, name: str, **params: str) -> tuple[int, Any]:
        async with self.session.post(f"{self.base}/api/{name}", data={"api_key": self.key, **params}) as resp:
            return resp.status, await resp.json()

    async def code_texted(self, phone: str = PHONE) -> str:
        body = await self.pool.fetchval("SELECT body FROM engine_outbound WHERE recipient = $1 ORDER BY id DESC "
                                        "LIMIT 1", phone)
        match = re.search(r"\b(\d{6})\b", body)
        assert match, body
        return match.group(1)


@pytest.fixture
async def client(pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Client]:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        # The application under test shares lib's SMSC (setup_app does not hand out its API key).
        web = await admin.create_app(pool, "web")
        await pool.execute("UPDATE engine_app SET smsc_id = (SELECT smsc_id FROM engine_app WHERE name = 'lib') "
                           "WHERE name = 'web'")
        async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
            yield Client(session, running.runtime.base_url or "", web.api_key, pool)


async def test_web_opt_in_with_the_texted_code(client: Client) -> None:
    status, body = await client.call("opt_in_request", phone_number="(347) 264-3707", tags="events,kids")
    assert status == 200 and int(body["message_id"]) > 0
    code = await client.code_texted()
    wrong = "000000" if code != "000000" else "111111"
    status, body = await client.call("opt_in_confirm", phone_number=PHONE, code=wrong)
    assert status == 400 and "4 tries left" in body["error"]
    assert await client.pool.fetchval("SELECT count(*) FROM engine_subscription") == 0
    assert await client.call("opt_in_confirm", phone_number=PHONE, code=code) == (200, {})
    tags = {r["tag"] for r in await client.pool.fetch("SELECT tag FROM engine_subscription WHERE source = 'web'")}
    assert tags == {"events", "kids"}
    assert await client.pool.fetchval("SELECT source FROM engine_consent_event") == "web"
    status, body = await client.call("opt_in_confirm", phone_number=PHONE, code=code)  # used up
    assert status == 400 and "request a new one" in body["error"]


async def test_a_code_locks_after_five_wrong_tries_and_expires_after_ten_minutes(client: Client) -> None:
    await client.call("opt_in_request", phone_number=PHONE)
    code = await client.code_texted()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        status, _body = await client.call("opt_in_confirm", phone_number=PHONE, code=wrong)
        assert status == 400
    status, body = await client.call("opt_in_confirm", phone_number=PHONE, code=code)
    assert status == 400 and "locked" in body["error"]
    await client.call("opt_in_request", phone_number=PHONE)  # a new code, a new count
    code = await client.code_texted()
    await client.pool.execute("UPDATE engine_optin_code SET expires_at = $1",
                              datetime.now(UTC) - timedelta(seconds=1))
    status, body = await client.call("opt_in_confirm", phone_number=PHONE, code=code)
    assert status == 400 and "no valid code" in body["error"]
    status, body = await client.call("opt_in_confirm", phone_number=PHONE, code="12ab56")
    assert status == 400 and "6-digit" in body["error"]


async def test_a_phone_that_opted_out_cannot_be_texted_a_code(client: Client) -> None:
    app_id = await client.pool.fetchval("SELECT id FROM engine_app WHERE name = 'web'")
    await api_store.blacklist(client.pool, app_id, [PHONE])
    status, body = await client.call("opt_in_request", phone_number=PHONE)
    assert status == 409 and "START" in body["error"]
    assert await client.pool.fetchval("SELECT count(*) FROM engine_outbound") == 0


async def test_send_to_subscribers_by_tag_and_cancel_only_those(client: Client) -> None:
    app_id = await client.pool.fetchval("SELECT id FROM engine_app WHERE name = 'web'")
    for phone, tag in [("+13472643701", "events"), ("+13472643702", "kids"), ("+13472643703", "other"),
                       ("+13472643704", "events")]:
        await client.pool.execute("INSERT INTO engine_subscription (app_id, phone, tag, source) "
                                  "VALUES ($1, $2, $3, 'api')", app_id, phone, tag)
    await api_store.blacklist(client.pool, app_id, ["+13472643704"])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, body = await client.call("send_message", tags="events, kids", body="Storytime moved to 11", on=later)
    assert status == 200
    ids = body["message_ids"].split(",")
    recipients = {r["recipient"] for r in await client.pool.fetch("SELECT recipient FROM engine_outbound")}
    assert len(ids) == 2 and recipients == {"+13472643701", "+13472643702"}  # the opted-out one is left out
    status, body = await client.call("send_message", tags="events", phone_number=PHONE, body="x")
    assert status == 400 and "not both" in body["error"]
    assert await client.call("cancel_messages", message_ids=",".join(ids)) == (200, {"canceled_count": 0})
    assert await client.call("cancel_subscription_messages", message_ids=",".join(ids)) == (
        200, {"canceled_count": 2})
