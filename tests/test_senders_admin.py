"""Sender types, brands and campaigns as operators set them up: the store, the command line and the API's DID calls,
against a real database and the fake carrier."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import phonenumbers
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.api.carousel import CarouselApi
from engine.config import Settings
from engine.errors import InvalidInput, NotFound
from engine.store import admin, senders
from engine.testing import FakeCarrier
from tests.helpers.engine import add_fake_app, carrier
from tests.helpers.processes import run_command as engine_cli


async def _dids(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch("SELECT number, sender_type, country, limit_per_min, burst FROM engine_did ORDER BY number")
    return [tuple(r) for r in rows]


async def test_each_type_is_stored_with_its_pace_and_an_explicit_limit_wins(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    await admin.add_dids(pool, "lib", ["+16462000001", "+18885550100"])
    await admin.add_dids(pool, "lib", ["12345"], sender_type="short_code")
    await admin.add_dids(pool, "lib", ["654321"], sender_type="short_code", limit_per_min=3000, burst=5)
    assert await _dids(pool) == [
        ("+16462000001", "long_code", None, 60, 1),
        ("+18885550100", "toll_free", None, 180, 1),
        ("12345", "short_code", "US", 6000, 10),
        ("654321", "short_code", "US", 3000, 5),
    ]
    # Re-adding changes the type's pace back to its default unless a limit is given.
    await admin.add_dids(pool, "lib", ["654321"], sender_type="short_code")
    assert (await _dids(pool))[-1] == ("654321", "short_code", "US", 6000, 10)


async def test_sender_ids_keep_a_pool_of_their_own_and_bad_input_changes_nothing(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    await admin.create_app(pool, "uk")
    await admin.add_dids(pool, "lib", ["+16462000001"])
    with pytest.raises(InvalidInput, match="own country"):
        await admin.add_dids(pool, "lib", ["ACME"], sender_type="alphanumeric", country="GB")
    await admin.add_dids(pool, "uk", ["ACME", "ACME News"], sender_type="alphanumeric", country="GB")
    with pytest.raises(InvalidInput, match="own country"):
        await admin.add_dids(pool, "uk", ["ACME FR"], sender_type="alphanumeric", country="FR")
    with pytest.raises(InvalidInput, match="own country"):
        await admin.add_dids(pool, "uk", ["+16462000002"])
    with pytest.raises(InvalidInput, match="5 or 6 digits"):  # one bad sender: none is added
        await admin.add_dids(pool, "lib", ["12345", "123"], sender_type="short_code")
    assert [n for n, *_ in await _dids(pool)] == ["+16462000001", "ACME", "ACME News"]
    # Only phone numbers get an SmsUrl.
    assert await admin.inbound_numbers(pool, ["ACME", "+16462000001", "12345"]) == ["+16462000001"]


async def test_the_database_refuses_what_a_type_does_not_allow(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    smsc = await pool.fetchval("SELECT smsc_id FROM engine_app")
    bad = [
        ("12", "short_code", "US"),  # too short
        ("12345", "short_code", None),  # a short code serves a country
        ("123456", "alphanumeric", "GB"),  # a sender ID has a letter
        ("ACME", "long_code", None),  # a phone number is E.164
        ("MG123", "messaging_service", None),
    ]
    for number, kind, country in bad:
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute("INSERT INTO engine_did (smsc_id, number, sender_type, country) VALUES ($1, $2, $3, $4)",
                               smsc, number, kind, country)
    assert await pool.fetchval("SELECT count(*) FROM engine_did") == 0


async def test_brands_and_campaigns(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    await admin.add_dids(pool, "lib", ["+16462000001", "+16462000002", "+18885550100"])
    await senders.create_brand(pool, "acme", tier="standard_high")
    await senders.create_brand(pool, "tiny", daily_cap=1000, reserve=0)
    await senders.create_brand(pool, "free", no_cap=True)
    with pytest.raises(InvalidInput, match="below the daily cap"):
        await senders.create_brand(pool, "odd", daily_cap=100, reserve=100)
    with pytest.raises(InvalidInput, match="already exists"):
        await senders.create_brand(pool, "acme")
    with pytest.raises(InvalidInput, match="unknown tier"):
        await senders.create_brand(pool, "odd", tier="gold")
    await senders.create_campaign(pool, "acme-alerts", "acme")  # the tier's default: 75 segments/s
    await senders.create_campaign(pool, "acme-promo", "acme", "1.25")
    with pytest.raises(NotFound):
        await senders.create_campaign(pool, "x", "nobody")
    with pytest.raises(InvalidInput, match="two decimals"):
        await senders.create_campaign(pool, "x", "acme", "1.255")
    # Every long code of the pool (not the toll-free number), then one taken out again.
    assert await admin.assign_campaign(pool, "acme-alerts", app="lib") == ["+16462000001", "+16462000002"]
    assert await admin.assign_campaign(pool, None, app="lib", numbers=["+16462000002"]) == ["+16462000002"]
    with pytest.raises(NotFound):
        await admin.assign_campaign(pool, "acme-alerts", app="lib", numbers=["+16462000009"])
    campaigns = {r["name"]: (r["brand"], r["mps"], r["dids"]) for r in await senders.list_campaigns(pool)}
    assert campaigns == {"acme-alerts": ("acme", Decimal(75), 1), "acme-promo": ("acme", Decimal("1.25"), 0)}
    brands = {r["name"]: (r["daily_cap"], r["reserve"], r["used_today"])
              for r in await senders.list_brands(pool, datetime(2000, 1, 1, tzinfo=UTC))}
    assert brands == {"acme": (200_000, 20_000, 0), "tiny": (1000, 0, 0), "free": (None, 0, 0)}
    await senders.update_brand(pool, "tiny", tier="standard_mid")  # a new tier brings its cap and reserve
    await senders.update_brand(pool, "acme", reserve=5)
    rows = {r["name"]: (r["tier"], r["daily_cap"], r["reserve"])
            for r in await senders.list_brands(pool, datetime(2000, 1, 1, tzinfo=UTC))}
    assert rows["tiny"] == ("standard_mid", 40_000, 4_000) and rows["acme"] == ("standard_high", 200_000, 5)


@pytest.mark.system
async def test_command_line_types_brands_and_campaigns(db_dsn: str, pool: asyncpg.Pool) -> None:
    assert (await engine_cli(db_dsn, "app", "create", "--name", "lib")).returncode == 0
    out = await engine_cli(db_dsn, "did", "add", "--app", "lib", "--type", "short_code", "12345")
    assert out.returncode == 0, out.stderr
    out = await engine_cli(db_dsn, "did", "add", "--app", "lib", "12345")  # not guessed: the error says what to do
    assert out.returncode == 2 and "short_code" in out.stderr
    out = await engine_cli(db_dsn, "did", "add", "--app", "lib", "+16462000001")
    assert out.returncode == 0, out.stderr
    out = await engine_cli(db_dsn, "brand", "create", "acme", "--tier", "standard_low", "--reserve", "100")
    assert out.returncode == 0, out.stderr
    out = await engine_cli(db_dsn, "campaign", "create", "alerts", "--brand", "acme")
    assert out.returncode == 0, out.stderr
    out = await engine_cli(db_dsn, "campaign", "assign", "alerts", "--app", "lib")
    assert out.returncode == 0 and "+16462000001" in out.stdout, out.stderr
    listed = json.loads((await engine_cli(db_dsn, "did", "list", "--app", "lib", "--json")).stdout)
    assert [(d["number"], d["sender_type"], d["limit_per_min"], d["campaign"]) for d in listed] == [
        ("+16462000001", "long_code", 60, "alerts"), ("12345", "short_code", 6000, None)]
    brands = json.loads((await engine_cli(db_dsn, "brand", "list", "--json")).stdout)
    assert [(b["name"], b["daily_cap"], b["reserve"], b["used_today"]) for b in brands] == [("acme", 10000, 100, 0)]
    campaigns = json.loads((await engine_cli(db_dsn, "campaign", "list", "--json")).stdout)
    assert [(c["name"], c["mps"], c["dids"]) for c in campaigns] == [("alerts", "4.00", 1)]
    out = await engine_cli(db_dsn, "app", "set", "lib", "--hold-transactional", "yes")
    assert out.returncode == 0, out.stderr
    out = await engine_cli(db_dsn, "app", "status", "lib")
    assert out.returncode == 0, out.stderr
    assert "senders: 1 long_code in campaign alerts (4.00 segments/s)" in out.stdout
    assert "senders: 1 short_code" in out.stdout
    assert "brand acme: 0/10000 segments today, 100 kept for transactional" in out.stdout
    assert await pool.fetchval("SELECT hold_transactional FROM engine_app") is True
    out = await engine_cli(db_dsn, "campaign", "set", "alerts", "--mps", "0")
    assert out.returncode == 2 and "--mps" in out.stderr
    assert await pool.fetchval("SELECT mps FROM engine_campaign") == Decimal(4)


# ---- the API's DID calls -----------------------------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    key: str
    fake: FakeCarrier

    async def call(self, name: str, **params: str) -> tuple[int, Any]:
        async with await self.client.post(f"/api/{name}", data={"api_key": self.key, **params}) as resp:
            return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with carrier() as fake:
        new = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=["+16462000001"])
        app = web.Application()
        app.add_routes(CarouselApi(pool, Settings(request_timeout=5.0), cache_seconds=0).routes())
        async with TestClient(TestServer(app)) as client:
            yield Api(client, new.api_key, fake)


def _toll_free(digits: str) -> bool:
    return phonenumbers.number_type(phonenumbers.parse("+" + digits)) == phonenumbers.PhoneNumberType.TOLL_FREE


async def test_find_did_searches_local_and_toll_free_numbers(api: Api) -> None:
    status, body = await api.call("find_did")
    assert status == 200
    found = body["dids"].split(",")
    assert any(_toll_free(n) for n in found) and any(not _toll_free(n) for n in found)
    status, body = await api.call("find_did", type="toll_free", number="888")
    assert status == 200 and all(_toll_free(n) and "888" in n for n in body["dids"].split(","))
    status, body = await api.call("find_did", type="long_code")
    assert status == 200 and not any(_toll_free(n) for n in body["dids"].split(","))
    status, body = await api.call("find_did", type="fax")
    assert status == 400 and body["error"].startswith("type:")


async def test_add_did_buys_a_toll_free_number_paced_as_one(api: Api, pool: asyncpg.Pool) -> None:
    status, body = await api.call("add_did", type="toll_free")
    assert status == 200, body
    assert _toll_free(body["did"]) and "+" + body["did"] in api.fake.numbers
    row = await pool.fetchrow("SELECT sender_type, limit_per_min FROM engine_did WHERE number = $1", "+" + body["did"])
    assert tuple(row) == ("toll_free", 180)
    status, body = await api.call("add_did", number="+18885550142")  # the type follows the number
    assert status == 200, body
    assert await pool.fetchval("SELECT sender_type FROM engine_did WHERE number = '+18885550142'") == "toll_free"
    for wanted in ("short_code", "alphanumeric"):
        status, body = await api.call("add_did", type=wanted)
        assert status == 400 and body["error"].startswith("type:") and "engine did add" in body["error"]
    status, body = await api.call("add_did", type="toll_free", number="+16462000077")
    assert status == 400 and "not a toll-free number" in body["error"]
    assert await pool.fetchval("SELECT count(*) FROM engine_did") == 3
