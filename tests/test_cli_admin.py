"""Admin commands as operators run them: `engine app set`, `engine app status`, `engine provider test`.

Real processes against a real database; `provider test` talks to a real loopback fake carrier, so the
command runs as an asyncio subprocess while this event loop keeps serving the carrier.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from engine.events import PHONE_BLACKLISTED, phone_event
from engine.store.outbox import NewEvent, enqueue_events
from engine.testing import DEFAULT_ACCOUNT_SID, FakeCarrier
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
    async with pool.acquire() as conn:
        await enqueue_events(conn, [NewEvent(app_id, PHONE_BLACKLISTED, phone_event("+13472643707"))] * 3)
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


async def test_shared_smsc_and_inbound_settings(db_dsn: str, pool: asyncpg.Pool) -> None:
    rc, out, err = await engine(db_dsn, "smsc", "create", "county", "--limit-per-min", "600")
    assert rc == 0 and "created" in out, err
    rc, _, err = await engine(db_dsn, "smsc", "create", "county")
    assert rc == 2 and "already exists" in err
    for name in ("library", "parks"):
        rc, _, err = await engine(db_dsn, "app", "create", "--name", name, "--smsc", "county")
        assert rc == 0, err
    rc, _, err = await engine(db_dsn, "app", "create", "--name", "museum", "--smsc", "nosuch")
    assert rc == 2 and "nosuch" in err
    assert await pool.fetchval("SELECT count(*) FROM engine_app WHERE name = 'museum'") == 0  # nothing half-made
    rc, out, err = await engine(db_dsn, "provider", "add", "--smsc", "county", "--kind", "fake",
                                "--carrier-handles-optout")
    assert rc == 0 and "attached to --smsc county" in out, err
    assert await pool.fetchval("SELECT carrier_handles_optout AND app_id IS NULL FROM engine_provider") is True
    rc, out, err = await engine(db_dsn, "did", "add", "--smsc", "county", "+16462000001", "+16462000002")
    # Stored (all or nothing) even though no carrier listens to point them at the engine: exit 1, sync later.
    assert rc == 1 and "added +16462000001, +16462000002" in out and "provider sync --smsc county" in err, err
    rc, out, err = await engine(db_dsn, "did", "list", "--smsc", "county", "--json")
    assert [d["number"] for d in json.loads(out)] == ["+16462000001", "+16462000002"]
    rc, _, err = await engine(db_dsn, "did", "list", "--app", "library", "--smsc", "county")
    assert rc == 2 and "not allowed with" in err
    rc, out, err = await engine(db_dsn, "smsc", "list", "--json")
    county = next(r for r in json.loads(out) if r["name"] == "county")
    assert (county["apps"], county["limit_per_min"], county["owner"], county["dids"]) == (
        ["library", "parks"], 600, None, 2)

    rc, _, err = await engine(db_dsn, "app", "create", "--name", "museum")
    assert rc == 0, err
    smsc = await pool.fetchval("SELECT smsc_id FROM engine_app WHERE name = 'museum'")
    await pool.execute("INSERT INTO engine_keyword (smsc_id, app_id, keyword) "
                       "SELECT $1, id, 'ART' FROM engine_app WHERE name = 'museum'", smsc)
    rc, out, err = await engine(db_dsn, "app", "set", "museum", "--smsc", "county", "--session-idle", "2h",
                                "--loop-max-replies", "5", "--loop-window", "2m", "--loop-cooldown", "30m")
    assert rc == 0, err
    row = await pool.fetchrow("SELECT s.name, a.session_idle_seconds, a.loop_max_replies, a.loop_window_seconds, "
                              "a.loop_cooldown_seconds, (SELECT k.smsc_id FROM engine_keyword k) = a.smsc_id AS moved "
                              "FROM engine_app a JOIN engine_smsc s ON s.id = a.smsc_id WHERE a.name = 'museum'")
    assert tuple(row) == ("county", 7200, 5, 120, 1800, True)  # the keyword moved with its app
    rc, _, err = await engine(db_dsn, "app", "set", "museum", "--loop-cooldown", "60s")  # shorter than the window
    assert rc == 2 and "--loop-cooldown" in err
    assert await pool.fetchval("SELECT loop_cooldown_seconds FROM engine_app WHERE name = 'museum'") == 1800


async def test_inbound_review_lists_possible_opt_outs_and_acts_on_them(db_dsn: str, pool: asyncpg.Pool) -> None:
    rc, _, err = await engine(db_dsn, "app", "create", "--name", "library")
    assert rc == 0, err
    app_id = await pool.fetchval("SELECT id FROM engine_app")
    for i, body in enumerate(["Cancel my hold", "End time for storytime?", "Quit sending reminders please"]):
        await pool.execute(
            "INSERT INTO engine_inbound (message_sid, phone, to_number, body, params, state, app_id, possible_opt_out)"
            " VALUES ($1, $2, '+16462000001', $3, '{}', 'done', $4, true)", f"SM{i}", f"+1347264370{i}", body, app_id)
    rc, out, err = await engine(db_dsn, "inbound", "review", "--json")
    assert rc == 0, err
    listed = json.loads(out)
    assert [i["body"] for i in listed] == ["Cancel my hold", "End time for storytime?", "Quit sending reminders please"]
    first, second, third = (i["id"] for i in listed)
    rc, out, err = await engine(db_dsn, "inbound", "review", "--opt-out", str(third), "--dismiss", str(first))
    assert rc == 0, err
    assert await pool.fetchval("SELECT phone FROM engine_blacklist") == "+13472643702"
    assert await pool.fetchval("SELECT source FROM engine_consent_event") == "operator"
    rc, out, err = await engine(db_dsn, "inbound", "review")
    assert rc == 0 and "End time" in out and "Cancel" not in out and "Quit" not in out
    assert str(second) in out
