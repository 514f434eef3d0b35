"""The command line as operators and scripts use it: real processes against a real database."""

from __future__ import annotations

import json

import asyncpg
import pytest

from engine.config import Settings
from engine.console.passwords import verify_password
from engine.errors import ConfigError
from tests.helpers.processes import run_command as engine


@pytest.mark.system
async def test_admin_commands_create_app_provider_and_dids(db_dsn: str, pool: asyncpg.Pool) -> None:
    out = await engine(db_dsn, "app", "create", "--name", "library", "--json")
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert set(created) == {"app_id", "api_key", "callback_secret"}
    # The key is stored only as a hash.
    stored = await pool.fetchval("SELECT api_key_hash FROM engine_app WHERE id = $1", created["app_id"])
    assert stored and created["api_key"] not in stored

    # DIDs before the carrier account: stored, with a note that no SmsUrl could be set yet.
    out = await engine(db_dsn, "did", "add", "--app", "library", "+1(646)200-0001", "6462000002",
                       "--limit-per-min", "30")
    assert out.returncode == 0, out.stderr
    assert "engine provider sync --app library" in out.stderr

    out = await engine(db_dsn, "provider", "add", "--app", "library", "--kind", "twilio",
                       "--account-sid", "AC" + "1" * 32, "--auth-token", "s3cr3t-token-value")
    assert out.returncode == 0, out.stderr
    assert "s3cr3t-token-value" not in out.stdout + out.stderr
    assert "engine provider sync --app library" in out.stdout  # the DIDs must be pointed at the new account
    out = await engine(db_dsn, "did", "list", "--app", "library", "--json")
    assert [(d["number"], d["limit_per_min"]) for d in json.loads(out.stdout)] == [
        ("+16462000001", 30), ("+16462000002", 30)]

    # Bad input: clear error, non-zero exit, nothing changed.
    out = await engine(db_dsn, "did", "add", "--app", "library", "+16462000003", "not-a-number")
    assert out.returncode == 2 and "not-a-number" in out.stderr
    assert await pool.fetchval("SELECT count(*) FROM engine_did") == 2
    out = await engine(db_dsn, "app", "create", "--name", "library")
    assert out.returncode == 2 and "already exists" in out.stderr
    out = await engine(db_dsn, "did", "remove", "--app", "library", "+16462000002", "+16462000009")
    assert out.returncode == 2 and "+16462000009 is not a DID of library: nothing was removed" in out.stderr
    assert await pool.fetchval("SELECT count(*) FROM engine_did") == 2
    # Removed, then its SmsUrl is cleared on the carrier account: api.twilio.com cannot be reached from here, so
    # the number is named with the reason (exit 1), and the DID is gone all the same.
    out = await engine(db_dsn, "did", "remove", "--app", "library", "+16462000002")
    assert out.returncode == 1 and "removed +16462000002" in out.stdout
    assert "+16462000002: SmsUrl not cleared" in out.stderr and "Traceback" not in out.stderr
    assert await pool.fetchval("SELECT count(*) FROM engine_did") == 1


@pytest.mark.system
async def test_demo_json_summary_small(db_dsn: str, pool: asyncpg.Pool) -> None:
    out = await engine(db_dsn, "demo", "--messages", "120", "--dids", "20", "--limit-per-min", "600", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("submitted", "delivered", "failed", "suppressed_duplicates", "test_numbers", "elapsed_s",
                "messages_per_s", "max_per_did_60s"):
        assert key in summary
    assert summary["submitted"] == 120
    assert summary["delivered"] + summary["failed"] + summary["suppressed_duplicates"] == 120
    assert 0 < summary["max_per_did_60s"] <= 600
    # People texted back: one question the library's gateway answered, HELP, STOP, then START.
    inbound = summary["inbound"]
    assert {k: inbound[k] for k in ("mos", "opt_outs", "opt_ins", "help_answers", "routed_to_app", "app_heard",
                                    "app_replies", "confirmations")} == {
        "mos": 4, "opt_outs": 1, "opt_ins": 1, "help_answers": 1, "routed_to_app": 1, "app_heard": 1,
        "app_replies": 1, "confirmations": 2}
    stop_phone = inbound["texts_to_the_phone_that_said_stop"]
    assert sum("unsubscribed" in body for body in stop_phone) == 1
    # The console's address and a login for it, on stderr (stdout is the one JSON object).
    assert "/console/" in out.stderr and "log in as demo / " in out.stderr
    password = out.stderr.split("log in as demo / ")[1].split()[0]
    stored = await pool.fetchval("SELECT password_hash FROM engine_operator WHERE name = 'demo'")
    assert verify_password(stored, password)


def test_settings_from_env_and_flags() -> None:
    s = Settings.from_env({"ENGINE_PORT": "9000", "ENGINE_BATCH_SIZE": "50", "ENGINE_DELIVERY": "at-least-once"})
    assert (s.port, s.batch_size, s.delivery) == (9000, 50, "at-least-once")
    assert s.override(port=9100, batch_size=None).port == 9100
    assert s.callback_base == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError):
        Settings.from_env({"ENGINE_PORT": "many"})
    with pytest.raises(ConfigError):
        Settings(delivery="twice")  # type: ignore[arg-type]


@pytest.mark.system
async def test_an_unreachable_database_is_one_clear_line_without_the_password(db_dsn: str) -> None:
    """A refused port, an unknown host and a database that does not exist: exit 1 with one line naming the
    problem and what to check, no traceback, and never the DSN's password."""
    from urllib.parse import urlsplit, urlunsplit

    real = urlsplit(db_dsn)
    missing_db = urlunsplit(real._replace(path="/no_such_database"))
    for dsn, cause in (("postgresql://ops:s3cret-pw@127.0.0.1:1/engine", "ConnectionRefusedError"),
                       ("postgresql://ops:s3cret-pw@no-such-host.invalid/engine", "gaierror"),
                       (missing_db, "InvalidCatalogNameError")):
        done = await engine(dsn, "app", "list")
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"error: cannot reach the database ({cause}") and "ENGINE_DSN" in done.stderr
        assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
