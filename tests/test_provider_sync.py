"""DIDs pointed at the engine: `engine provider sync`, `engine did add` and the API's add_did set each number's
SmsUrl on the (fake) carrier, and texts sent through the fake carrier's /_fake/inbound reach a real engine.

The commands run as real processes (as operators run them) against a real database and a fake carrier on
loopback; the end-to-end test runs the real engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from engine.app_settings import AppChanges
from engine.providers.twilio import TwilioClient
from engine.store import admin
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, setup_app

PHONE = "+13472643707"
PUBLIC = "https://engine.example.com"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout.strip().splitlines()[-1])


async def engine_cli(dsn: str, *args: str) -> Run:
    """`python -m engine ARGS` in its own process; the event loop stays free to serve the fake carrier."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")} | {
        "ENGINE_DSN": dsn, "ENGINE_SECRET_KEY": os.environ["ENGINE_SECRET_KEY"]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def _provider_id(pool: asyncpg.Pool) -> int:
    pid: int = await pool.fetchval("SELECT id FROM engine_provider")
    return pid


def _owned(fake: FakeCarrier, numbers: list[str]) -> Iterator[str]:
    for number in numbers:
        fake.add_number(number)
        yield number


async def test_provider_sync_points_every_did_and_names_those_it_cannot(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=4)
        list(_owned(fake, dids[:3]))  # the 4th is not on the carrier account
        url = f"{PUBLIC}/webhooks/twilio/inbound/{await _provider_id(pool)}"

        run = await engine_cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", PUBLIC + "/", "--json")
        assert run.returncode == 1, run.stderr
        report = run.json()
        assert report["sms_url"] == url
        assert (sorted(report["pointed"]), report["unchanged"], list(report["failed"])) == (dids[:3], [], [dids[3]])
        assert f"{dids[3]} not pointed" in run.stderr and "not a number of account" in run.stderr
        assert [fake.sms_url(n) for n in dids] == [url, url, url, None]

        fake.add_number(dids[3])  # fixed at the carrier: the next sync points it and leaves the others alone
        run = await engine_cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", PUBLIC)
        assert run.returncode == 0, run.stderr
        assert f"SmsUrl {url} (HTTP POST): 1 pointed now, 3 already pointed, 0 failed, of 4 DIDs" in run.stdout
        assert fake.sms_url(dids[3]) == url

        run = await engine_cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", "engine.example.com")
        assert run.returncode == 2 and "http(s) URL" in run.stderr
        run = await engine_cli(db_dsn, "provider", "test", "--app", "lib", "--public-url", PUBLIC)
        assert run.returncode == 0 and f"inbound URL (\"A message comes in\", HTTP POST): {url}" in run.stdout


async def test_did_add_points_the_numbers_it_adds(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=0)
        url = f"{PUBLIC}/webhooks/twilio/inbound/{await _provider_id(pool)}"
        mine = list(_owned(fake, ["+16462000001", "+16462000002"]))

        run = await engine_cli(db_dsn, "did", "add", "--app", "lib", *mine, "--public-url", PUBLIC)
        assert run.returncode == 0, run.stderr
        assert f"SmsUrl {url} (HTTP POST) set on 2 of 2" in run.stdout
        assert [fake.sms_url(n) for n in mine] == [url, url]

        # A number the carrier account does not have: added all the same (it can send), named, exit 1 ...
        run = await engine_cli(db_dsn, "did", "add", "--app", "lib", "+16462000003", mine[0], "--public-url", PUBLIC)
        assert run.returncode == 1
        assert "+16462000003 not pointed" in run.stderr and "engine provider sync --app lib" in run.stderr
        assert await pool.fetchval("SELECT count(*) FROM engine_did") == 3
        # ... and `provider sync` points it once the carrier has it.
        fake.add_number("+16462000003")
        run = await engine_cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", PUBLIC, "--json")
        assert run.returncode == 0 and run.json()["pointed"] == ["+16462000003"]

        # Bad input changes nothing, at the carrier or here.
        run = await engine_cli(db_dsn, "did", "add", "--app", "lib", "+16462000004", "not-a-number")
        assert run.returncode == 2 and "not-a-number" in run.stderr
        run = await engine_cli(db_dsn, "did", "add", "--app", "lib", "+16462000004", "--public-url", "ftp://x")
        assert run.returncode == 2 and "http(s) URL" in run.stderr
        assert await pool.fetchval("SELECT count(*) FROM engine_did") == 3


async def test_did_remove_clears_the_smsurl_of_numbers_still_pointed_at_the_engine(pool: asyncpg.Pool,
                                                                                 db_dsn: str) -> None:
    """Removed numbers stay on the carrier account: their texts would keep coming to the engine. `did remove`
    clears the SmsUrl of those still pointed here, and leaves alone one pointed elsewhere meanwhile."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=0)
        url = f"{PUBLIC}/webhooks/twilio/inbound/{await _provider_id(pool)}"
        mine = list(_owned(fake, ["+16462000001", "+16462000002", "+16462000003"]))
        run = await engine_cli(db_dsn, "did", "add", "--app", "lib", *mine, "--public-url", PUBLIC)
        assert run.returncode == 0, run.stderr
        async with aiohttp.ClientSession() as session:  # someone re-points one at the carrier, through its API
            twilio = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                                  base_url=fake.base_url or "")
            assert await twilio.point_number(mine[1], "https://elsewhere.example/sms")

        run = await engine_cli(db_dsn, "did", "remove", "--app", "lib", mine[0], mine[1], "--public-url", PUBLIC)
        assert run.returncode == 0, run.stderr
        assert "SmsUrl cleared on 1 of 2 (1 not pointed at the engine)" in run.stdout
        assert [fake.sms_url(n) for n in mine] == [None, "https://elsewhere.example/sms", url]
        assert sorted(await pool.fetchval("SELECT array_agg(number) FROM engine_did")) == [mine[2]]


async def test_add_did_buys_numbers_already_pointed_at_the_running_engine(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        new = await admin.create_app(pool, "lib")
        await admin.add_provider(pool, "lib", kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                 auth_token=DEFAULT_AUTH_TOKEN, base_url=fake.base_url)
        key = new.api_key
        async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
            base = running.runtime.base_url or ""
            async with session.post(f"{base}/api/add_did", data={"api_key": key, "number": "+13475550143"}) as resp:
                assert resp.status == 200, await resp.text()
            url = f"{base}/webhooks/twilio/inbound/{await _provider_id(pool)}"
            assert fake.sms_url("+13475550143") == url  # the engine's real port, not the configured 0
            delivery = await fake.send_inbound(PHONE, "+13475550143", "HELP")
            assert delivery.status == 200  # signed over the SmsUrl, which the engine checks


async def _until(pool: asyncpg.Pool, sql: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pool.fetchval(sql):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {sql}")
        await asyncio.sleep(0.05)


async def _mts(session: aiohttp.ClientSession, fake: FakeCarrier) -> list[tuple[str, str, str]]:
    async with session.get(f"{fake.base_url}/_fake/messages") as resp:
        return [(m["from"], m["to"], m["body"]) for m in await resp.json()]


async def test_stop_and_help_texted_through_the_carrier_are_answered_once_each(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = list(_owned(fake, await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)))
        await admin.update_app(pool, "lib", AppChanges(columns={"help_text": "Lib help: call 555-0100"}))
        async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
            base = running.runtime.base_url or ""
            run = await engine_cli(db_dsn, "provider", "sync", "--app", "lib", "--public-url", base)
            assert run.returncode == 0, run.stderr

            async def text(body: str, **extra: str) -> dict[str, Any]:
                form = {"From": PHONE, "To": dids[1], "Body": body, **extra}
                async with session.post(f"{fake.base_url}/_fake/inbound", data=form) as resp:
                    assert resp.status == 200
                    answer: dict[str, Any] = await resp.json()
                    return answer

            stop = await text("STOP")
            assert stop["status"] == 200 and stop["message_sid"].startswith("SM")
            await _until(pool, "SELECT count(*) = 1 FROM engine_inbound WHERE state = 'done'")
            await wait_final(pool, 1)
            (confirmation,) = await _mts(session, fake)
            assert confirmation[:2] == (dids[1], PHONE) and "unsubscribed" in confirmation[2]

            assert (await text("HELP"))["status"] == 200
            await _until(pool, "SELECT count(*) = 2 FROM engine_inbound WHERE state = 'done'")
            await wait_final(pool, 2)
            assert (await _mts(session, fake))[1] == (dids[1], PHONE, "Lib help: call 555-0100")

            # The carrier retries the STOP webhook (same MessageSid): accepted, stored and answered once.
            again = await text("STOP", MessageSid=stop["message_sid"])
            assert again == {"message_sid": stop["message_sid"], "status": 200}
            await asyncio.sleep(1.0)  # time for a wrongly stored duplicate to be handled and answered
            assert await pool.fetchval("SELECT count(*) FROM engine_inbound") == 2
            assert len(await _mts(session, fake)) == 2
        assert await pool.fetchval("SELECT count(*) FROM engine_consent_event") == 1
