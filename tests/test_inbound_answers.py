"""Applications answer incoming_message: replies from the DID the phone texted, close_session + reprocess switching
apps, and a gateway that answers everything facing a phone that answers everything (an auto-reply loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import asyncpg
from aiohttp import web

from engine.app_settings import AppChanges
from engine.callbacks.answer import ParsedAnswer, parse_answer
from engine.store import admin
from tests.helpers.database import fetch_until
from tests.helpers.engine import carrier, engine_running, provider_of, send_mo, setup_app

PHONE = "+13472643707"


@asynccontextmanager
async def gateway(answer: Callable[[dict[str, str]], web.Response]) -> AsyncIterator[list[dict[str, str]]]:
    """An application's gateway on loopback answering each callback with *answer*; yields what it received."""
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        received.append(form)
        return answer(form) if form.get("type") == "incoming_message" else web.Response(text="")

    app = web.Application()
    app.router.add_post("/cb", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    received.append({"url": f"http://{host}:{port}/cb"})
    try:
        yield received
    finally:
        await runner.cleanup()


def test_gateway_answers_are_read_as_the_seed_says() -> None:
    assert parse_answer(b"Thanks, see you at 10") == ParsedAnswer("Thanks, see you at 10")
    assert parse_answer(b"  ") is None
    assert parse_answer(b'{"body":"Switching to another app","close_session":true,"reprocess":"another keyword"}') == (
        ParsedAnswer("Switching to another app", True, "another keyword"))
    assert parse_answer(b'{"close_session": "yes"}', "application/json") == ParsedAnswer(None, True, None)
    assert parse_answer(b"{}", "application/json") is None
    assert parse_answer(b"{not json") == ParsedAnswer("{not json")  # then it is just text


async def test_a_plain_text_answer_is_sent_as_the_reply_from_the_did_texted(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake, gateway(lambda form: web.Response(text=f"Got '{form['body']}'")) as got:
        dids = await setup_app(pool, fake.base_url or "", dids=3, limit_per_min=6000)
        await admin.update_app(pool, "lib", _gateway(got[0]["url"]))
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            await send_mo(running.runtime.base_url or "", provider, PHONE, dids[2], "When is storytime?")
            await fetch_until(pool, "SELECT count(*) FROM engine_outbound WHERE state = 'delivered'")
        assert [(r.from_, r.to, r.body) for r in fake.records] == [(dids[2], PHONE, "Got 'When is storytime?'")]
        incoming = [f for f in got if f.get("type") == "incoming_message"]
        assert incoming[0]["phone_number"] == PHONE and incoming[0]["auto_responded"] == "false"
        assert await pool.fetchval("SELECT in_reply_to FROM engine_outbound") is not None


async def test_close_session_and_reprocess_hand_the_phone_to_another_app(pool: asyncpg.Pool, db_dsn: str) -> None:
    switch = '{"body": "Switching you to deals", "close_session": true, "reprocess": "DEALS"}'
    async with carrier() as fake, gateway(lambda form: web.Response(text=switch)) as got:
        dids = await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        crm = await admin.create_app(pool, "crm")
        await pool.execute("UPDATE engine_app SET smsc_id = (SELECT smsc_id FROM engine_app WHERE name = 'lib') "
                           "WHERE name = 'crm'")
        await admin.update_app(pool, "lib", _gateway(got[0]["url"]))
        smsc = await pool.fetchval("SELECT smsc_id FROM engine_app WHERE name = 'lib'")
        lib = await admin.get_app(pool, "lib")
        await pool.execute("INSERT INTO engine_keyword (smsc_id, app_id, keyword) VALUES ($1, $2, 'BOOKS'), "
                           "($1, $3, 'DEALS')", smsc, lib.id, crm.app_id)
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            await send_mo(running.runtime.base_url or "", provider, PHONE, dids[0], "BOOKS")
            await fetch_until(pool, "SELECT count(*) FROM engine_inbound WHERE depth = 1 AND state = 'done'")
            await fetch_until(pool, "SELECT count(*) FROM engine_outbound WHERE state = 'delivered'")
        mos = [(r["body"], r["app_id"], r["depth"]) for r in
               await pool.fetch("SELECT body, app_id, depth FROM engine_inbound ORDER BY id")]
        assert mos == [("BOOKS", lib.id, 0), ("DEALS", crm.app_id, 1)]
        assert [r.body for r in fake.records] == ["Switching you to deals"]
        sessions = {r["app_id"] for r in await pool.fetch("SELECT app_id FROM engine_session")}
        assert sessions == {crm.app_id}  # lib's closed, crm's opened by its keyword
        assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE type = 'session_closed'") == 1


async def test_an_auto_replying_gateway_meeting_an_auto_replying_phone_stops(pool: asyncpg.Pool, db_dsn: str) -> None:
    # (Numbered: an identical reply within the duplicate window would be suppressed anyway.)
    async with carrier() as fake, gateway(lambda form: web.Response(text=f"Thanks for: {form['body']}")) as got:
        dids = await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        await admin.update_app(pool, "lib", _gateway(got[0]["url"]))
        await pool.execute("UPDATE engine_app SET loop_max_replies = 4, loop_window_seconds = 60")
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            base = running.runtime.base_url or ""
            answered = 0
            await send_mo(base, provider, PHONE, dids[0], "I am away until Monday (1)")
            for _ in range(80):  # the phone answers every text it gets, automatically
                replies = [r for r in fake.records if r.to == PHONE]
                while answered < len(replies):
                    answered += 1
                    await send_mo(base, provider, PHONE, dids[0], f"I am away until Monday ({answered + 1})")
                await asyncio.sleep(0.1)
            await fetch_until(pool, "SELECT count(*) FROM engine_outbox WHERE type = 'auto_reply_loop'")
        assert len([r for r in fake.records if r.to == PHONE]) == 4  # then silence for the cool-down
        assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE type = 'auto_reply_loop'") == 1
        assert await pool.fetchval("SELECT count(*) FROM engine_inbound") == 5  # every MO still reached the app


def _gateway(url: str) -> AppChanges:
    return AppChanges(columns={"gateway_url": url})
