"""Admin commands as operators run them: `engine app set`, `engine app status`, `engine provider test`.

Real processes against a real database; `provider test` talks to a real loopback fake carrier, so the
command runs as an asyncio subprocess while this event loop keeps serving the carrier.
"""

from __future__ import annotations

import json

import asyncpg
import orjson
import pytest

from engine.providers.fake import DEFAULT_ACCOUNT_SID, FakeCarrier
from engine.store import outbox_queries as oq
from tests.helpers.processes import run_command as engine

pytestmark = pytest.mark.system


async def _settings(pool: asyncpg.Pool, name: str) -> dict[str, object]:
    row = await pool.fetchrow(
        "SELECT gateway_url, help_text, welcome_text, optout_text, optin_text, nomatch_text, split_mode, "
        "smart_encoding, flood_limit, extract(epoch FROM flood_period)::int AS flood_s, "
        "extract(epoch FROM dedup_window)::int AS dedup_s, callback_concurrency FROM engine_app WHERE name = $1",
        name)
    assert row is not None
    return dict(row)


async def test_app_set_writes_every_setting_or_nothing(db_dsn: str, pool: asyncpg.Pool) -> None:
    rc, _, err = await engine(db_dsn, "app", "create", "--name", "library")
    assert rc == 0, err
    rc, out, err = await engine(
        db_dsn, "app", "set", "library", "--help-text", "Library alerts. Reply STOP to stop.",
        "--welcome-text", "Welcome to library alerts!", "--optout-text", "You are unsubscribed.",
        "--optin-text", "You are subscribed again.", "--nomatch-text", "Sorry, we did not get that.",
        "--split-mode", "word", "--smart-encoding", "yes", "--flood-limit", "10/1h",
        "--gateway-url", "https://library.example.org/sms", "--dedup-window", "300", "--callback-concurrency", "8",
    )
    assert rc == 0, err
    assert "updated library" in out and "flood_limit = 10 per 3600s" in out
    expected = {
        "gateway_url": "https://library.example.org/sms", "help_text": "Library alerts. Reply STOP to stop.",
        "welcome_text": "Welcome to library alerts!", "optout_text": "You are unsubscribed.",
        "optin_text": "You are subscribed again.", "nomatch_text": "Sorry, we did not get that.",
        "split_mode": "word", "smart_encoding": True, "flood_limit": 10, "flood_s": 3600, "dedup_s": 300,
        "callback_concurrency": 8,
    }
    assert await _settings(pool, "library") == expected

    # One bad flag among good ones: exit 2, the flag named, nothing written.
    for args, flag in (
        (["--help-text", "changed", "--flood-limit", "10/1w"], "--flood-limit"),
        (["--welcome-text", "changed", "--smart-encoding", "maybe"], "--smart-encoding"),
        (["--split-mode", "paragraph"], "--split-mode"),
        (["--gateway-url", "library.example.org"], "--gateway-url"),
        (["--callback-concurrency", "0"], "--callback-concurrency"),
        (["--dedup-window", "soon"], "--dedup-window"),
    ):
        rc, _, err = await engine(db_dsn, "app", "set", "library", *args)
        assert rc == 2 and flag in err, (args, err)
    assert await _settings(pool, "library") == expected

    rc, _, err = await engine(db_dsn, "app", "set", "library")
    assert rc == 2 and "nothing to set" in err
    rc, _, err = await engine(db_dsn, "app", "set", "nosuch", "--help-text", "x")
    assert rc == 2 and "nosuch" in err

    # Empty values clear; 'off' removes the flood limit.
    rc, _, err = await engine(db_dsn, "app", "set", "library", "--gateway-url", "", "--welcome-text", "",
                              "--flood-limit", "off", "--smart-encoding", "no")
    assert rc == 0, err
    after = await _settings(pool, "library")
    assert (after["gateway_url"], after["welcome_text"], after["flood_limit"], after["flood_s"],
            after["smart_encoding"]) == (None, None, None, None, False)


async def test_app_status_shows_queue_outbox_and_dead_letters(db_dsn: str, pool: asyncpg.Pool) -> None:
    rc, out, err = await engine(db_dsn, "app", "create", "--name", "library", "--gateway-url",
                                "http://127.0.0.1:9/cb", "--json")
    assert rc == 0, err
    app_id = json.loads(out)["app_id"]
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status) VALUES "
        "($1, '+13472643707', 'a', 'queued', 0), ($1, '+13472643708', 'b', 'delivered', 1), "
        "($1, '+13472643709', 'c', 'delivered', 1)", app_id)
    payload = orjson.dumps({"phone_number": "+13472643707"}).decode()
    for _ in range(3):
        await pool.fetchval(oq.ENQUEUE, app_id, "phone_blacklisted", payload)
    await pool.execute("UPDATE engine_outbox SET state = 'delivered' WHERE id = (SELECT min(id) FROM engine_outbox)")
    await pool.execute(
        "UPDATE engine_outbox SET state = 'dead', attempts = 17, last_error = 'HTTP 503: try later' "
        "WHERE id = (SELECT max(id) FROM engine_outbox)")

    rc, out, err = await engine(db_dsn, "app", "status", "library")
    assert rc == 0, err
    assert "queue: delivered=2, queued=1" in out
    assert "callbacks: pending=1, delivered=1, dead=1" in out
    assert "phone_blacklisted" in out and "attempts=17" in out and "HTTP 503: try later" in out

    rc, out, err = await engine(db_dsn, "app", "status", "library", "--json")
    assert rc == 0, err
    status = json.loads(out)
    assert status["queue"] == {"delivered": 2, "queued": 1}
    assert status["outbox"] == {"pending": 1, "delivered": 1, "dead": 1}
    assert [d["last_error"] for d in status["dead_letters"]] == ["HTTP 503: try later"]
    assert status["app"]["gateway_url"] == "http://127.0.0.1:9/cb"

    rc, _, err = await engine(db_dsn, "app", "status", "nosuch")
    assert rc == 2 and "nosuch" in err


async def test_provider_add_single_sms_and_provider_test(db_dsn: str, pool: asyncpg.Pool) -> None:
    fake = FakeCarrier(latency=0.0)
    base = await fake.start()
    try:
        for name in ("library", "wrongtoken", "noprovider"):
            rc, _, err = await engine(db_dsn, "app", "create", "--name", name)
            assert rc == 0, err
        rc, out, err = await engine(db_dsn, "provider", "add", "--app", "library", "--kind", "fake",
                                    "--base-url", base, "--single-sms")
        assert rc == 0, err
        assert "single SMS only" in out
        rc, _, err = await engine(db_dsn, "provider", "add", "--app", "wrongtoken", "--kind", "fake",
                                  "--base-url", base, "--auth-token", "not-the-token")
        assert rc == 0, err
        rows = {r["name"]: r for r in await pool.fetch(
            "SELECT a.name, p.id, p.single_sms FROM engine_provider p JOIN engine_app a ON a.id = p.app_id")}
        assert rows["library"]["single_sms"] is True and rows["wrongtoken"]["single_sms"] is False

        pid = rows["library"]["id"]
        rc, out, err = await engine(db_dsn, "provider", "test", "--app", "library",
                                    "--public-url", "https://sms.example.org/")
        assert rc == 0, err
        assert out.startswith("OK: fake account " + DEFAULT_ACCOUNT_SID)
        assert f"https://sms.example.org/webhooks/twilio/inbound/{pid}" in out
        assert f"https://sms.example.org/webhooks/twilio/status/{pid}/" in out

        rc, out, err = await engine(db_dsn, "provider", "test", "--app", "wrongtoken")
        assert rc == 1
        assert "error:" in out and "20003: Authenticate" in out  # the carrier's own error
        assert "not-the-token" not in out + err
        assert f"/webhooks/twilio/inbound/{rows['wrongtoken']['id']}" in out

        rc, _, err = await engine(db_dsn, "provider", "test", "--app", "noprovider")
        assert rc == 2 and "no provider" in err
    finally:
        await fake.stop()
