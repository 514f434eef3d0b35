"""`engine app set` for lifetime, retention and quiet hours, `engine purge` and `engine contact zone`, run as the
operator runs them (real processes, real database)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from tests.helpers.processes import run_command as engine

pytestmark = pytest.mark.system


async def test_app_lifetime_retention_and_quiet_settings(db_dsn: str, pool: asyncpg.Pool) -> None:
    assert (await engine(db_dsn, "app", "create", "--name", "lib")).returncode == 0
    rc, out, err = await engine(db_dsn, "app", "set", "lib", "--valid-for", "2h", "--retention", "90d",
                                "--quiet-window", "09:00-20:00", "--quiet-hours", "no")
    assert rc == 0, err
    rc, out, err = await engine(db_dsn, "app", "status", "lib", "--json")
    assert rc == 0, err
    app = json.loads(out)["app"]
    assert (app["valid_for_seconds"], app["retention"], app["quiet_hours"], app["quiet_window"]) == (
        7200.0, "90 days", False, "09:00-20:00")
    # One bad value among good ones: exit 2, the flag named, nothing written.
    for args, flag in ((["--valid-for", "2h", "--retention", "1h"], "--retention"),
                       (["--valid-for", "forever"], "--valid-for"),
                       (["--quiet-window", "22:00-23:00"], "--quiet-window")):
        rc, _, err = await engine(db_dsn, "app", "set", "lib", *args)
        assert rc == 2 and flag in err, err
    rc, out, _ = await engine(db_dsn, "app", "status", "lib")
    assert "valid_for: 7200s   retention: 90 days   quiet hours (marketing): off" in out
    rc, _, err = await engine(db_dsn, "app", "set", "lib", "--valid-for", "off", "--quiet-hours", "yes")
    assert rc == 0, err
    assert await pool.fetchval("SELECT valid_for IS NULL AND quiet_hours FROM engine_app WHERE name = 'lib'")


async def test_purge_and_contact_zone_commands(db_dsn: str, pool: asyncpg.Pool) -> None:
    assert (await engine(db_dsn, "app", "create", "--name", "lib")).returncode == 0
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
    for age in ("2 years", "2 years", "1 day"):
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state, created_at) "
                           f"VALUES ($1, '+13472643707', 'x', 'delivered', now() - interval '{age}')", app_id)
    rc, out, err = await engine(db_dsn, "purge", "--dry-run", "--json")
    assert rc == 0, err
    assert json.loads(out) | {"batches": 0} == {"dry_run": True, "older_than": None, "apps": {"lib": "1 year 6 mons"},
                                                 "messages": 2, "callback_events": 0, "batches": 0}
    rc, out, err = await engine(db_dsn, "purge", "--app", "lib", "--older-than", "1y", "--batch", "1")
    assert rc == 0, err
    assert out.startswith("deleted 2 messages and 0 delivered callback events")
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 1
    for args, problem in ((["--older-than", "1h"], "at least a day"), (["--batch", "0"], "--batch"),
                          (["--app", "nobody"], "no application")):
        rc, _, err = await engine(db_dsn, "purge", *args)
        assert rc == 2 and problem in err, err

    rc, out, err = await engine(db_dsn, "contact", "zone", "--app", "lib", "(347) 264-3707", "America/Chicago")
    assert rc == 0 and out.strip() == "+13472643707: America/Chicago (stored)", (out, err)
    rc, out, err = await engine(db_dsn, "contact", "zone", "--app", "lib", "+13472643707", "--json")
    assert json.loads(out) == {"phone_number": "+13472643707", "time_zone": "America/Chicago",
                               "effective": ["America/Chicago"]}
    rc, _, err = await engine(db_dsn, "contact", "zone", "--app", "lib", "+13472643707", "Mars/Olympus")
    assert rc == 2 and "not an IANA time zone" in err
    rc, out, err = await engine(db_dsn, "contact", "zone", "--app", "lib", "+13472643707", "--clear")
    assert rc == 0 and out.strip() == "+13472643707: America/New_York (from the number)", (out, err)
