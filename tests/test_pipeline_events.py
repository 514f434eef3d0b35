"""Encoding outcomes the app hears about: smart-encoding replacements and destinations without Unicode."""

from __future__ import annotations

import asyncpg

from engine.app_settings import AppChanges
from engine.store import admin
from engine.submit import Outgoing, submit_many
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, setup_app


async def test_smart_encoding_sends_gsm_and_reports_invalid_characters(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges(columns={"gateway_url": "http://127.0.0.1:9/gw",
                                                               "smart_encoding": True}))
        ids = await submit_many(pool, "lib", [Outgoing("+13472643707", "It\u2019s \u201cStorytime\u201d \u2014 10am")])
        async with engine_running(db_dsn):
            await wait_final(pool, 1)
        assert [r.body for r in fake.records] == ['It\'s "Storytime" - 10am']
        row = await pool.fetchrow("SELECT encoding, segments FROM engine_outbound WHERE id = $1", ids[0])
        assert tuple(row) == ("GSM-7", 1)
        payload = await pool.fetchval("SELECT payload FROM engine_outbox WHERE type = 'invalid_characters'")
        assert payload is not None
        assert f'"message_id": "{ids[0]}"' in payload and "\u2019" in payload


async def test_unicode_to_a_destination_without_it_is_refused_and_reported(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges(columns={"gateway_url": "http://127.0.0.1:9/gw"}))
        ids = await submit_many(pool, "lib", [
            Outgoing("+79161234567", "Привет 👋"),  # UCS-2 to a no-Unicode destination: refused
            Outgoing("+79161234568", "Hello"),  # GSM-7: fine
        ])
        async with engine_running(db_dsn, no_unicode_prefixes="+7"):
            await wait_final(pool, 2)
        rows = {r["id"]: r for r in await pool.fetch("SELECT id, state, status, error_message FROM engine_outbound")}
        assert (rows[ids[0]]["state"], rows[ids[0]]["status"], rows[ids[0]]["error_message"]) == (
            "failed", 2, "no_unicode_support")
        assert rows[ids[1]]["state"] == "delivered"
        assert [r.body for r in fake.records] == ["Hello"]
        events = {r["type"]: r["payload"] for r in await pool.fetch(
            "SELECT type, payload::text FROM engine_outbox WHERE type <> 'delivery_report'")}
        assert "+79161234567" in events["no_unicode_support"]
        reports = await pool.fetch("SELECT payload->>'status' AS s, payload->>'final' AS f FROM engine_outbox "
                                   "WHERE type = 'delivery_report' AND payload->>'message_id' = $1", str(ids[0]))
        assert [(r["s"], r["f"]) for r in reports] == [("2", "true")]
