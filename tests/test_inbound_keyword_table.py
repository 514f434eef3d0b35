"""Every opt-out, opt-in and help variant (and the negatives) end to end: texted through the fake carrier's
`POST /_fake/inbound` to a real engine whose DIDs `engine provider sync` pointed at it; each variant from its own
phone, and what the engine did is read from its own record and the carrier's."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
import asyncpg
import pytest

from tests.helpers.engine import carrier, engine_running, setup_app

pytestmark = pytest.mark.system

# (body, what the chain does with it, is a confirmation / answer texted back from the engine itself)
TABLE: list[tuple[str, str, bool]] = [
    *[(word, "opt_out", True) for word in (
        "STOP", "stop", " Stop. ", "STOP!", "STOPALL", "STOP ALL", "stop all", "UNSUBSCRIBE", "Unsubscribe",
        "REVOKE", "OPTOUT", "OPT OUT", "opt-out", "END", "end", "QUIT", "CANCEL", "Q", "STP", "REMOVE",
        "TERMINATE", "RE: STOP", "RE:STOP", "re:stop",
    )],
    # The unambiguous ones also with text after them …
    ("stop please", "opt_out", True), ("STOP texting me", "opt_out", True), ("unsubscribe me", "opt_out", True),
    ("revoke my consent", "opt_out", True), ("Opt out of this", "opt_out", True),
    # … the ambiguous ones with text are ordinary messages (flagged for review), and look-alikes are not keywords.
    ("Cancel my hold", "routed", False), ("End time for storytime?", "routed", False), ("Quit it", "routed", False),
    ("Stopping by later", "routed", False), ("stopwatch", "routed", False), ("Quite nice", "routed", False),
    *[(word, "opt_in", False) for word in ("START", "unstop", "SUB", "subscribe", "OPT-IN", "opt in")],
    ("YES", "routed", False),  # no pending confirmation: just a message
    *[(word, "help", True) for word in ("HELP", "help", "HLP", "INFO", "help me", "Help!")],
    ("helpful tips?", "routed", False),
]


async def _cli(dsn: str, *args: str) -> None:
    env = {**os.environ, "ENGINE_DSN": dsn}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "engine", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out, err)


async def test_every_keyword_variant_end_to_end(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        fake.add_number(dids[0])
        async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
            await _cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", running.runtime.base_url or "")
            phones = {}
            for i, (body, _outcome, _answered) in enumerate(TABLE):
                phones[body] = f"+1347264{i:04d}"
                form = {"From": phones[body], "To": dids[0], "Body": body}
                async with session.post(f"{fake.base_url}/_fake/inbound", data=form) as resp:
                    reply = await resp.json()
                    assert resp.status == 200 and reply["status"] == 200, (body, reply)
            deadline = time.monotonic() + 60
            while await pool.fetchval("SELECT count(*) FROM engine_inbound WHERE state = 'done'") < len(TABLE) or (
                    await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE state IN "
                                        "('queued', 'claimed', 'sending', 'sent')")):
                assert time.monotonic() < deadline, "MOs not all handled"
                await asyncio.sleep(0.1)
        outcomes = {r["phone"]: (r["outcome"], r["possible_opt_out"]) for r in await pool.fetch(
            "SELECT phone, outcome, possible_opt_out FROM engine_inbound")}
        texted = {r.to for r in fake.records}
        for body, outcome, answered in TABLE:
            phone = phones[body]
            assert outcomes[phone][0] == outcome, (body, outcomes[phone])
            assert (phone in texted) == answered, (body, answered)
        flagged = {body for body, _o, _a in TABLE if outcomes[phones[body]][1]}
        assert flagged == {"Cancel my hold", "End time for storytime?", "Quit it"}
        blacklisted = {r["phone"] for r in await pool.fetch("SELECT phone FROM engine_blacklist")}
        assert blacklisted == {phones[body] for body, outcome, _a in TABLE if outcome == "opt_out"}
        # Exactly one text to each phone that opted out: its confirmation.
        per_phone = [r.to for r in fake.records]
        assert all(per_phone.count(phones[b]) == 1 for b, outcome, _a in TABLE if outcome == "opt_out")
