"""`engine messages list|show|resend` as operators run them: real processes against a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from engine import statuses as st
from engine.store import outbound
from engine.store.outbound import Accepted, CarrierStatus, SendMark
from tests.helpers.processes import run_command as engine

pytestmark = pytest.mark.system

DID = "+16462000001"
NOW = datetime.now(UTC)


async def _messages(pool: asyncpg.Pool) -> tuple[list[int], list[int]]:
    """App 'lib': 30 messages (one delivered through the send path's statements, with a late callback), app
    'other': 5."""
    ids: dict[str, list[int]] = {}
    for name, n in (("lib", 30), ("other", 5)):
        app = await pool.fetchval("INSERT INTO engine_app (name) VALUES ($1) RETURNING id", name)
        rows = await pool.fetch(
            "INSERT INTO engine_outbound (app_id, recipient, body, type, tag, state, status, created_at) "
            "SELECT $1, '+1212555' || lpad((g % 4)::text, 4, '0'), $2 || ' message ' || g, "
            "CASE WHEN g % 3 = 0 THEN 'reminder' END, CASE WHEN g % 2 = 0 THEN 'kids' END, "
            "CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'delivered' END, CASE WHEN g % 5 = 0 THEN 2 ELSE 1 END, "
            "now() - make_interval(mins => 100 - g) FROM generate_series(1, $3) g RETURNING id", app, name, n)
        ids[name] = sorted(r["id"] for r in rows)
    app = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
    smsc = await pool.fetchval("INSERT INTO engine_smsc (name, app_id) VALUES ('lib', $1) RETURNING id", app)
    did = await pool.fetchval("INSERT INTO engine_did (smsc_id, number) VALUES ($1, $2) RETURNING id", smsc, DID)
    mid = await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, '+13472643707', "
                              "'Your hold is ready') RETURNING id", app)
    await outbound.claim(pool, "w", 1, 30.0, [app])
    await outbound.mark_sending(pool, "w", 30.0, [SendMark(mid, did, DID, 1, "GSM-7")], NOW)
    await outbound.mark_accepted(pool, [Accepted(mid, "SM" + "a" * 32, "queued")])
    for status in ("delivered", "sent"):
        change = st.from_twilio(status)
        assert change is not None
        await outbound.apply_statuses(pool, [CarrierStatus(mid, status, change, None, None)])
    ids["lib"].append(mid)
    return ids["lib"], ids["other"]


async def test_list_pages_filters_and_json(db_dsn: str, pool: asyncpg.Pool) -> None:
    lib, other = await _messages(pool)
    rc, out, err = await engine(db_dsn, "messages", "list", "--app", "lib", "--json", "--limit", "500")
    assert rc == 0, err
    listed = json.loads(out)
    assert [int(m["message_id"]) for m in listed["messages"]] == sorted(lib, reverse=True)
    assert listed["next_cursor"] is None
    # Paged: the cursor the first page gives leads to the rest, nothing twice.
    rc, out, _ = await engine(db_dsn, "messages", "list", "--app", "lib", "--limit", "20", "--json")
    first = json.loads(out)
    rc, out, _ = await engine(db_dsn, "messages", "list", "--app", "lib", "--limit", "20", "--json", "--cursor",
                              first["next_cursor"])
    rest = json.loads(out)
    assert [m["message_id"] for m in first["messages"] + rest["messages"]] == [
        m["message_id"] for m in listed["messages"]]
    # Filters, as the API's.
    rc, out, err = await engine(db_dsn, "messages", "list", "--app", "lib", "--status", "2", "--tag", "kids",
                                "--phone", "212-555-0000", "--json")
    assert rc == 0, err
    got = json.loads(out)["messages"]
    assert [(m["body"], m["status"], m["tag"], m["phone_number"]) for m in got] == [
        ("lib message 20", 2, "kids", "+12125550000")]
    rc, out, err = await engine(db_dsn, "messages", "list", "--app", "lib", "--type", "reminder", "--json")
    assert sorted(int(m["body"].rsplit(" ", 1)[1]) for m in json.loads(out)["messages"]) == list(range(3, 31, 3))
    # Every app by default (the table names the app); the table shows ids, numbers and states.
    rc, out, err = await engine(db_dsn, "messages", "list", "--limit", "500")
    assert rc == 0, err
    assert all(str(i) in out for i in lib + other) and "other" in out and "lib" in out
    assert "+13472643707" in out and "1 delivered" in out and "2 failed" in out
    rc, out, _ = await engine(db_dsn, "messages", "list", "--app", "lib", "--limit", "5")
    assert "more: add --cursor " in out


async def test_list_flags_are_checked_first(db_dsn: str, pool: asyncpg.Pool) -> None:
    await _messages(pool)
    for args, flag in ((["--status", "9"], "--status"), (["--phone", "12"], "--phone"), (["--job", "x"], "--job"),
                       (["--since", "whenever"], "--since"), (["--limit", "0"], "--limit"),
                       (["--cursor", "nope"], "--cursor")):
        rc, _, err = await engine(db_dsn, "messages", "list", *args)
        assert rc == 2 and flag in err, (args, err)
    rc, _, err = await engine(db_dsn, "messages", "list", "--app", "nosuch")
    assert rc == 2 and "nosuch" in err


async def test_show_prints_the_fields_and_the_timeline(db_dsn: str, pool: asyncpg.Pool) -> None:
    lib, _ = await _messages(pool)
    mid = lib[-1]
    rc, out, err = await engine(db_dsn, "messages", "show", str(mid))
    assert rc == 0, err
    for text in ("Your hold is ready", "+13472643707", DID, "SM" + "a" * 32, "GSM-7", "timeline", "created",
                 "sending", "carrier", "queued", "delivered", "callback changed nothing"):
        assert text in out, (text, out)
    rc, out, err = await engine(db_dsn, "messages", "show", str(mid), "--json")
    assert rc == 0, err
    shown = json.loads(out)
    assert [e["event"] for e in shown["timeline"]] == ["created", "engine", "carrier", "carrier", "callback"]
    assert [e["state"] for e in shown["timeline"]] == ["queued", "sending", "sent", "delivered", "delivered"]
    rc, _, err = await engine(db_dsn, "messages", "show", "999999")
    assert rc == 2 and "999999" in err
    rc, _, err = await engine(db_dsn, "messages", "show", "abc")
    assert rc == 2 and "ID" in err


async def test_resend_queues_a_linked_copy(db_dsn: str, pool: asyncpg.Pool) -> None:
    lib, _ = await _messages(pool)
    mid = lib[-1]
    rc, out, err = await engine(db_dsn, "messages", "resend", str(mid))
    assert rc == 0, err
    new = int(out.rsplit(" ", 1)[-1])
    rc, out, err = await engine(db_dsn, "messages", "resend", str(mid), "--to", "(212) 555-0199", "--json")
    assert rc == 0, err
    fixed = int(json.loads(out)["message_id"])
    rows = await pool.fetch("SELECT id, recipient, body, resent_from, state FROM engine_outbound "
                            "WHERE id = ANY($1::bigint[]) ORDER BY id", [new, fixed])
    assert [tuple(r) for r in rows] == [(new, "+13472643707", "Your hold is ready", mid, "queued"),
                                        (fixed, "+12125550199", "Your hold is ready", mid, "queued")]
    count = await pool.fetchval("SELECT count(*) FROM engine_outbound")
    rc, _, err = await engine(db_dsn, "messages", "resend", str(mid), "--to", "12")
    assert rc == 2 and "--to" in err
    rc, _, err = await engine(db_dsn, "messages", "resend", str(new))  # still queued: not sent yet
    assert rc == 2 and "not_sent" in err
    await pool.execute("INSERT INTO engine_blacklist (app_id, phone) SELECT app_id, recipient FROM engine_outbound "
                       "WHERE id = $1", mid)
    rc, _, err = await engine(db_dsn, "messages", "resend", str(mid))
    assert rc == 2 and "blacklisted" in err and "opted out" in err
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == count
