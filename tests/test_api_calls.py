"""The Carousel-compatible HTTP API over real loopback HTTP against a real database and fake carrier."""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import phonenumbers
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate as validate_openapi

from engine.api.carousel import CarouselApi
from engine.api.openapi import CALLS
from engine.config import Settings
from engine.store import queries as q
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier, available_numbers
from tests.helpers.database import wait_final
from tests.helpers.engine import add_fake_app, carrier, engine_running
from tests.helpers.polling import wait_until

DID = "+16462000001"


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    key: str
    app_id: int
    pool: asyncpg.Pool
    fake: FakeCarrier
    api: CarouselApi

    async def call(self, name: str, *, key: str | None = None, method: str = "POST", **params: str) -> tuple[int, Any]:
        """Call /api/<name> with api_key (unless key='') and *params*; returns (status, decoded JSON)."""
        fields = dict(params)
        if key != "":
            fields["api_key"] = key if key is not None else self.key
        if method == "GET":
            resp = await self.client.get(f"/api/{name}", params=fields)
        else:
            resp = await self.client.post(f"/api/{name}", data=fields)
        async with resp:
            assert resp.content_type == "application/json"
            return resp.status, orjson.loads(await resp.read())

    async def ok(self, name: str, **params: str) -> Any:
        status, body = await self.call(name, **params)
        assert status == 200, body
        return body

    async def bad(self, name: str, param: str, **params: str) -> str:
        """The call must fail with 400 naming *param*; returns the message."""
        status, body = await self.call(name, **params)
        assert status == 400, body
        message: str = body["error"]
        assert message.startswith(f"{param}:"), message
        return message

    async def count(self, table: str) -> int:
        n: int = await self.pool.fetchval(f"SELECT count(*) FROM {table}")
        return n


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    async with carrier() as fake:
        new = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID])
        handlers = CarouselApi(pool, Settings(request_timeout=5.0), cache_seconds=0)
        app = web.Application()
        app.add_routes(handlers.routes())
        async with TestClient(TestServer(app)) as client:
            yield Api(client, new.api_key, new.app_id, pool, fake, handlers)


def ids_of(body: dict[str, str]) -> list[int]:
    return [int(x) for x in body["message_ids"].split(",")]


# ---- authentication, routing, errors -------------------------------------------------------------


async def test_api_key_missing_or_wrong_is_401(api: Api) -> None:
    status, body = await api.call("send_message", key="", phone_number="2125550100", body="hi")
    assert status == 401 and "api_key" in body["error"]
    status, body = await api.call("send_message", key="not-the-key", phone_number="2125550100", body="hi")
    assert status == 401 and "api_key" in body["error"]
    assert await api.count("engine_outbound") == 0


async def test_unknown_call_is_404(api: Api) -> None:
    status, body = await api.call("send_fax", phone_number="2125550100")
    assert status == 404 and "send_fax" in body["error"]


async def test_get_with_query_string_like_the_curl_example(api: Api) -> None:
    # As in the docs: '+' in a raw query string is a space; the number still parses.
    resp = await api.client.get(f"/api/send_message?api_key={api.key}&body=test&phone_number=+1(347)264-3707")
    assert resp.status == 200 and resp.content_type == "application/json"
    (mid,) = ids_of(await resp.json())
    assert await api.pool.fetchval("SELECT recipient FROM engine_outbound WHERE id = $1", mid) == "+13472643707"


async def test_malformed_requests_are_400_or_413(api: Api) -> None:
    await api.bad("send_message", "body", phone_number="2125550100", body="nul\x00byte")
    resp = await api.client.post("/api/send_message", data=b"api_key=x&body=\xff",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 400 and "UTF-8" in (await resp.json())["error"]
    big = io.BytesIO(f"api_key={api.key}&phone_number=2125550100&body={'x' * (1024 * 1024 + 10)}".encode())
    resp = await api.client.post("/api/send_message", data=big,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 413 and resp.content_type == "application/json"
    assert await api.count("engine_outbound") == 0


async def test_server_fault_is_500_logged_and_changes_nothing(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    # A trigger that fails the session write: the messages inserted earlier in the call must roll back.
    await api.pool.execute("""
        CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'session store exploded'; END $$;
        CREATE TRIGGER boom BEFORE INSERT ON engine_session FOR EACH ROW EXECUTE FUNCTION boom();
    """)
    with caplog.at_level(logging.ERROR, logger="engine.api.carousel"):
        status, body = await api.call("send_message", phone_numbers="2125550100,2125550101", body="hi",
                                      action_expected="yes")
    assert status == 500 and "error id" in body["error"]
    assert any(r.exc_info for r in caplog.records)
    assert api.key not in caplog.text
    assert await api.count("engine_outbound") == 0


async def test_openapi_document_describes_every_call(api: Api) -> None:
    resp = await api.client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate_openapi(doc)  # a valid OpenAPI 3 document
    assert doc["openapi"].startswith("3.")
    assert {c.name for c in CALLS} == set(api.api.calls)
    for name in api.api.calls:
        path = doc["paths"][f"/api/{name}"]
        assert set(path) == {"get", "post"}
        assert {"200", "400", "401", "500"} <= set(path["post"]["responses"])
    send = doc["paths"]["/api/send_message"]["get"]["parameters"]
    assert {p["name"] for p in send} == {
        "phone_number", "phone_numbers", "body", "tags", "action_expected", "on", "tag",
        "type", "category", "valid_for", "expires_at"}


# ---- send_message -------------------------------------------------------------------------------


async def test_send_message_queues_one_row_per_recipient(api: Api) -> None:
    body = await api.ok("send_message", phone_numbers="+1(347)264-3707, 212-555-0100", body="Storytime at 10",
                        tag="kids")
    ids = ids_of(body)
    assert len(ids) == 2 and all(i > 0 for i in ids)
    rows = await api.pool.fetch("SELECT id, app_id, recipient, body, tag, send_at, state, status FROM engine_outbound "
                                "ORDER BY id")
    assert [r["id"] for r in rows] == ids
    assert [r["recipient"] for r in rows] == ["+13472643707", "+12125550100"]
    for r in rows:
        assert (r["app_id"], r["body"], r["tag"], r["send_at"], r["state"], r["status"]) == (
            api.app_id, "Storytime at 10", "kids", None, "queued", 0)


async def test_send_message_negative_codes_in_recipient_order(api: Api) -> None:
    await api.pool.execute("INSERT INTO engine_blacklist (app_id, phone) VALUES ($1, '+12125550101')", api.app_id)
    await api.pool.execute("UPDATE engine_app SET flood_limit = 2, flood_period = interval '1 hour' WHERE id = $1",
                           api.app_id)
    await api.pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, '+12125550102', 'a'), "
                           "($1, '+12125550102', 'b')", api.app_id)
    body = await api.ok("send_message", body="hi",
                        phone_numbers="12345,2125550100,2125550101,2125550102,2125550103,2125550103,2125550103")
    ids = ids_of(body)
    assert ids[0] == -1 and ids[1] > 0 and ids[2] == -2 and ids[3] == -3
    assert ids[4] > 0 and ids[5] > 0 and ids[6] == -3  # the call's own messages count towards the limit
    queued = await api.pool.fetch("SELECT recipient FROM engine_outbound WHERE id = ANY($1::bigint[])",
                                  [i for i in ids if i > 0])
    assert sorted(r["recipient"] for r in queued) == ["+12125550100", "+12125550103", "+12125550103"]


async def test_send_message_parameter_errors_name_the_parameter(api: Api) -> None:
    await api.bad("send_message", "body", phone_number="2125550100")
    await api.bad("send_message", "body", phone_number="2125550100", body="   ")
    await api.bad("send_message", "body", phone_number="2125550100", body="x" * 1601)
    await api.bad("send_message", "phone_number", body="hi")
    await api.bad("send_message", "phone_numbers", body="hi", phone_numbers=",".join(["2125550100"] * 1001))
    await api.bad("send_message", "action_expected", phone_number="2125550100", body="hi", action_expected="maybe")
    await api.bad("send_message", "on", phone_number="2125550100", body="hi", on="when pigs fly")
    await api.bad("send_message", "tag", phone_number="2125550100", body="hi", tag="t" * 300)
    assert await api.count("engine_outbound") == 0


async def test_send_message_scheduled_with_on(api: Api) -> None:
    (mid,) = ids_of(await api.ok("send_message", phone_number="2125550100", body="later",
                                 on="2099-09-02T12:30:44-0500"))
    row = await api.pool.fetchrow("SELECT send_at, due_at FROM engine_outbound WHERE id = $1", mid)
    assert row["send_at"] == row["due_at"] == datetime(2099, 9, 2, 17, 30, 44, tzinfo=UTC)


async def test_action_expected_opens_a_session(api: Api) -> None:
    await api.ok("send_message", phone_numbers="2125550100,2125550100,12", body="Reply YES", action_expected="Y")
    rows = await api.pool.fetch("SELECT phone, expires_at - now() AS ttl FROM engine_session WHERE app_id = $1",
                                api.app_id)
    assert [r["phone"] for r in rows] == ["+12125550100"]
    assert timedelta(hours=23) < rows[0]["ttl"] <= timedelta(hours=24)
    await api.ok("send_message", phone_number="2125550101", body="no reply needed", action_expected="no")
    assert await api.count("engine_session") == 1


async def test_single_sms_carrier_splits_into_parts_one_id_each(api: Api) -> None:
    await api.pool.execute("UPDATE engine_provider SET single_sms = true")
    await api.pool.execute("UPDATE engine_app SET split_mode = 'word' WHERE id = $1", api.app_id)
    text = " ".join(["word"] * 70)  # 349 characters: three single SMS with "(i/n) " prefixes
    ids = ids_of(await api.ok("send_message", phone_numbers="2125550100,2125550101", body=text))
    assert len(ids) == 6
    rows = await api.pool.fetch("SELECT id, recipient, body FROM engine_outbound ORDER BY id")
    assert [r["id"] for r in rows] == ids
    assert [r["recipient"] for r in rows] == ["+12125550100"] * 3 + ["+12125550101"] * 3
    assert [r["body"][:6] for r in rows[:3]] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert all(len(r["body"]) <= 160 for r in rows)
    assert " ".join(r["body"][6:] for r in rows[:3]) == text
    # A short body is one part even on such a carrier.
    assert len(ids_of(await api.ok("send_message", phone_number="2125550102", body="short"))) == 1


# ---- send_messages ------------------------------------------------------------------------------


async def test_send_messages_template(api: Api) -> None:
    recipients = {"0123456789": {"name": "John", "credits": "5"}, "2125550100": {"name": "Mary", "credits": 10},
                  "+1 (212) 555-0101": {"name": "Ann", "credits": 0}}
    ids = ids_of(await api.ok("send_messages", template="Hello {{name}}. You have {{credits}} credits remaining.",
                              recipients=orjson.dumps(recipients).decode(), tag="credits"))
    assert ids[0] == -1 and ids[1] > 0 and ids[2] > 0
    rows = await api.pool.fetch("SELECT recipient, body, tag FROM engine_outbound ORDER BY id")
    assert [(r["recipient"], r["body"], r["tag"]) for r in rows] == [
        ("+12125550100", "Hello Mary. You have 10 credits remaining.", "credits"),
        ("+12125550101", "Hello Ann. You have 0 credits remaining.", "credits"),
    ]


async def test_send_messages_missing_placeholder_fails_the_call_and_queues_nothing(api: Api) -> None:
    recipients = {"2125550100": {"name": "Mary"}, "2125550101": {"nom": "Jean"}}
    message = await api.bad("send_messages", "recipients", template="Hello {{name}}",
                            recipients=orjson.dumps(recipients).decode(), action_expected="yes")
    assert "2125550101" in message and "{{name}}" in message
    assert await api.count("engine_outbound") == 0
    assert await api.count("engine_session") == 0


async def test_send_messages_parameter_errors(api: Api) -> None:
    await api.bad("send_messages", "template", recipients='{"2125550100": {}}')
    await api.bad("send_messages", "recipients", template="Hi")
    await api.bad("send_messages", "recipients", template="Hi", recipients="[not json")
    big: dict[str, dict[str, str]] = {f"212555{i:04d}": {} for i in range(1001)}
    await api.bad("send_messages", "recipients", template="Hi", recipients=orjson.dumps(big).decode())
    await api.bad("send_messages", "recipients", template="{{x}}" * 2, recipients='{"2125550100": {"x": "' +
                  "y" * 900 + '"}}')


async def test_send_messages_large_post_within_the_body_limit(pool: asyncpg.Pool, db_dsn: str) -> None:
    # 1,000 recipients with substitutions exceed aiohttp's default 64 KiB; the engine server takes 1 MiB.
    async with carrier() as fake:
        new = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID])
        async with engine_running(db_dsn) as running:
            recipients = {f"+1212555{i:04d}": {"name": "x" * 60} for i in range(1000)}
            async with aiohttp.ClientSession() as session:
                url = f"{running.runtime.base_url}/api/send_messages"
                resp = await session.post(url, data={"api_key": new.api_key, "template": "Hi {{name}}",
                                                            "recipients": orjson.dumps(recipients).decode(),
                                                            "on": "2099-01-01"})
                assert resp.status == 200, await resp.text()
                assert len(ids_of(await resp.json())) == 1000


# ---- cancel, status, tags -----------------------------------------------------------------------


async def test_cancel_messages_only_queued_ones_of_this_app(api: Api) -> None:
    ids = ids_of(await api.ok("send_message", phone_numbers="2125550100,2125550101,2125550102", body="later",
                              on="2099-01-01"))
    other = await add_fake_app(api.pool, api.fake.base_url or "", name="other")
    other_id = await api.pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body) "
                                       "VALUES ($1, '+12125550109', 'x') RETURNING id", other.app_id)
    await api.pool.execute("UPDATE engine_outbound SET state = 'claimed' WHERE id = $1", ids[2])
    body = await api.ok("cancel_messages", message_ids=f"{ids[0]},{ids[1]},{ids[2]},{other_id},999999,-2")
    assert body == {"canceled_count": 2}
    rows = await api.pool.fetch("SELECT id, state, status, status_rank, final_at FROM engine_outbound ORDER BY id")
    by_id = {r["id"]: r for r in rows}
    for mid in ids[:2]:
        assert (by_id[mid]["state"], by_id[mid]["status"], by_id[mid]["status_rank"]) == ("canceled", 2, 100)
        assert by_id[mid]["final_at"] is not None
    assert by_id[ids[2]]["state"] == "claimed" and by_id[other_id]["state"] == "queued"
    assert await api.ok("cancel_messages", message_ids=str(ids[0])) == {"canceled_count": 0}
    await api.bad("cancel_messages", "message_ids")
    await api.bad("cancel_messages", "message_ids", message_ids="1,abc")


async def _claim(conn: asyncpg.Connection | asyncpg.Pool, app_id: int) -> list[int]:
    """What a worker claims of *app_id*'s queue: the engine's own claim statement."""
    return [r["id"] for r in await conn.fetch(q.CLAIM, "w1", 10, 30.0, [app_id])]


async def _blocked_by(pool: asyncpg.Pool, pid: int) -> bool:
    """Some session is waiting for a lock that backend *pid* holds."""
    return bool(await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                    pid))


async def test_cancel_and_a_worker_claim_never_both_win(api: Api) -> None:
    first, second = ids_of(await api.ok("send_message", phone_numbers="2125550100,2125550101", body="x"))
    # A worker claims first (its transaction still open): the cancel waits for the claimed rows' locks, then
    # finds nothing queued.
    async with api.pool.acquire() as worker:
        tx = worker.transaction()
        await tx.start()
        claimed = await _claim(worker, api.app_id)
        cancel = asyncio.create_task(api.call("cancel_messages", message_ids=f"{first},{second}"))
        await wait_until(lambda: _blocked_by(api.pool, worker.get_server_pid()),
                         what="the cancel to wait for the claim's row locks")
        assert not cancel.done()
        await tx.commit()
    assert sorted(claimed) == [first, second]
    assert (await cancel)[1] == {"canceled_count": 0}
    # A cancel that commits first: the claim's SKIP LOCKED / state check leaves the row alone.
    (third,) = ids_of(await api.ok("send_message", phone_number="2125550102", body="y"))
    assert await api.ok("cancel_messages", message_ids=str(third)) == {"canceled_count": 1}
    assert await _claim(api.pool, api.app_id) == []
    assert await api.pool.fetchval("SELECT state FROM engine_outbound WHERE id = $1", third) == "canceled"


async def test_flood_limit_holds_under_concurrent_calls(api: Api) -> None:
    await api.pool.execute("UPDATE engine_app SET flood_limit = 1, flood_period = interval '1 hour' WHERE id = $1",
                           api.app_id)
    results = await asyncio.gather(*(api.ok("send_message", phone_number="2125550100", body=f"m{i}")
                                     for i in range(6)))
    codes = sorted(ids_of(r)[0] for r in results)
    assert codes[:5] == [-3] * 5 and codes[5] > 0
    assert await api.count("engine_outbound") == 1


async def test_delivery_status_reports_only_own_messages(api: Api) -> None:
    ids = ids_of(await api.ok("send_message", phone_numbers="2125550100,2125550101", body="hi"))
    await api.pool.execute("UPDATE engine_outbound SET status = 1, state = 'delivered' WHERE id = $1", ids[1])
    other = await add_fake_app(api.pool, api.fake.base_url or "", name="other")
    other_id = await api.pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body) "
                                       "VALUES ($1, '+12125550109', 'x') RETURNING id", other.app_id)
    body = await api.ok("delivery_status", message_ids=f"{ids[0]}, {ids[1]},{other_id},424242", method="GET")
    assert body == {str(ids[0]): 0, str(ids[1]): 1}


async def test_remove_tag(api: Api) -> None:
    did_id = await api.pool.fetchval("SELECT id FROM engine_did WHERE number = $1", DID)
    await api.pool.execute("INSERT INTO engine_tag_did (app_id, recipient, tag, did_id) VALUES "
                           "($1, '+12125550100', 'chat', $2), ($1, '+12125550100', 'other', $2)", api.app_id, did_id)
    assert await api.ok("remove_tag", phone_number="(212) 555-0100", tag="chat") == {}
    assert await api.pool.fetchval("SELECT array_agg(tag) FROM engine_tag_did") == ["other"]
    await api.bad("remove_tag", "tag", phone_number="2125550100")
    await api.bad("remove_tag", "phone_number", phone_number="12", tag="chat")


# ---- DIDs through the fake carrier --------------------------------------------------------------


async def test_dids_lists_the_smsc(api: Api) -> None:
    assert await api.ok("dids") == {"dids": "16462000001"}


async def test_find_add_delete_did_through_the_carrier(api: Api) -> None:
    found = (await api.ok("find_did", number="347"))["dids"].split(",")
    assert len(found) >= 5
    for n in found:
        assert "347" in n and phonenumbers.is_valid_number(phonenumbers.parse("+" + n))
    assert (await api.ok("add_did", number=found[0])) == {"did": found[0]}
    assert api.fake.numbers["+" + found[0]][0] == DEFAULT_ACCOUNT_SID
    assert (await api.ok("dids"))["dids"] == ",".join(sorted(["16462000001", found[0]]))
    assert (await api.ok("add_did", number=found[0])) == {"did": found[0]}  # already ours: idempotent

    random_did = (await api.ok("add_did"))["did"]  # no number: the first one available
    assert "+" + random_did in api.fake.numbers
    assert await api.count("engine_did") == 3

    assert await api.ok("delete_did", number=found[0]) == {}
    assert "+" + found[0] not in api.fake.numbers
    assert await api.pool.fetchval("SELECT count(*) FROM engine_did WHERE number = $1", "+" + found[0]) == 0
    # A DID the carrier never sold us (added by an operator) is simply removed.
    assert await api.ok("delete_did", number=DID) == {}
    await api.bad("delete_did", "number", number="+13475550100")
    await api.bad("delete_did", "number")
    await api.bad("add_did", "number", number="12")
    await api.bad("add_did", "country", country="USA")
    await api.bad("find_did", "number", number="3-4-7")


async def test_carrier_refusals_are_422_failures_502_and_change_nothing(api: Api) -> None:
    taken = "+13475550142"
    api.fake.numbers[taken] = ("AC" + "9" * 32, "PN" + "0" * 32)  # sold to someone else
    status, body = await api.call("add_did", number=taken)
    assert status == 422 and "not available" in body["error"]
    assert await api.count("engine_did") == 1

    bought = (await api.ok("add_did", number="+13475550143"))["did"]
    await api.pool.execute("UPDATE engine_provider SET auth_token = 'wrong'")
    status, body = await api.call("delete_did", number=bought)
    assert status == 502 and "carrier error" in body["error"]
    assert await api.count("engine_did") == 2  # still there: the carrier did not release it
    await api.pool.execute("UPDATE engine_provider SET auth_token = $1", DEFAULT_AUTH_TOKEN)
    status, _ = await api.call("find_did", country="FR")
    assert status == 422  # the carrier sells no numbers there: change the request


async def test_did_calls_without_a_carrier_account_are_409(api: Api) -> None:
    await api.pool.execute("UPDATE engine_smsc SET provider_id = NULL")
    status, body = await api.call("find_did")
    assert status == 409 and "carrier account" in body["error"]


# ---- sessions and blacklist ---------------------------------------------------------------------


async def events(pool: asyncpg.Pool, kind: str) -> list[dict[str, str]]:
    rows = await pool.fetch("SELECT payload::text AS p FROM engine_outbox WHERE type = $1 ORDER BY id", kind)
    return [orjson.loads(r["p"]) for r in rows]


async def test_close_sessions_emits_one_event_for_the_open_ones(api: Api) -> None:
    await api.pool.execute("INSERT INTO engine_session (app_id, phone) VALUES ($1, '+12125550100'), "
                           "($1, '+12125550101'), ($1, '+12125550102')", api.app_id)
    assert await api.ok("close_sessions", phone_numbers="2125550100, +1 212 555 0101,2125550199,bogus") == {}
    assert await api.pool.fetchval("SELECT array_agg(phone) FROM engine_session") == ["+12125550102"]
    assert await events(api.pool, "session_closed") == [{"phone_numbers": "+12125550100,+12125550101"}]
    assert await api.ok("close_sessions", phone_numbers="2125550100") == {}
    assert len(await events(api.pool, "session_closed")) == 1  # nothing closed, nothing reported


async def test_blacklist_unblacklist_status(api: Api) -> None:
    body = await api.ok("blacklist", phone_numbers="2125550100,+1(212)555-0101,nope")
    assert body == {"2125550100": True, "+1(212)555-0101": True, "nope": False}
    assert await api.ok("blacklist", phone_number="2125550100") == {"2125550100": True}  # already: no new event
    assert await events(api.pool, "phone_blacklisted") == [{"phone_number": "+12125550100"},
                                                           {"phone_number": "+12125550101"}]
    status = await api.ok("blacklist_status", phone_numbers="2125550100,2125550102,nope", method="GET")
    assert status == {"2125550100": True, "2125550102": False, "nope": False}
    ids = ids_of(await api.ok("send_message", phone_number="2125550100", body="hi"))
    assert ids == [-2]

    assert await api.ok("unblacklist", phone_numbers="2125550100,2125550102") == {"2125550100": True,
                                                                                  "2125550102": True}
    assert await events(api.pool, "phone_unblacklisted") == [{"phone_number": "+12125550100"}]
    assert await api.ok("blacklist_status", phone_number="2125550100") == {"2125550100": False}
    assert ids_of(await api.ok("send_message", phone_number="2125550100", body="hi"))[0] > 0
    await api.bad("blacklist", "phone_number")
    # The opt-out record keeps every change, the unblacklisted phone's opt-out included.
    record = [(r["phone"], r["action"], r["source"]) for r in await api.pool.fetch(
        "SELECT phone, action, source FROM engine_consent_event ORDER BY id")]
    assert record == [("+12125550100", "opt_out", "api"), ("+12125550101", "opt_out", "api"),
                      ("+12125550100", "opt_in", "api")]


# ---- keywords -----------------------------------------------------------------------------------


async def shared_app(api: Api, name: str) -> str:
    """Another application on the same (shared) SMSC; returns its API key."""
    other = await add_fake_app(api.pool, api.fake.base_url or "", name=name)
    await api.pool.execute("UPDATE engine_app SET smsc_id = (SELECT smsc_id FROM engine_app WHERE id = $1) "
                           "WHERE id = $2", api.app_id, other.app_id)
    return other.api_key


async def test_keywords_associate_validate_dissociate(api: Api) -> None:
    assert await api.ok("validate_keyword", keyword="Surf") == {}
    assert await api.ok("associate_keyword", keyword="Surf", mode="1", auto_subscribe="yes",
                        auto_subscribe_tags="beach, waves") == {}
    row = await api.pool.fetchrow("SELECT keyword, mode, auto_subscribe, auto_subscribe_tags FROM engine_keyword")
    assert tuple(row) == ("Surf", 1, True, ["beach", "waves"])
    # Re-associating its own keyword updates it; its own overlapping keywords are fine.
    assert await api.ok("associate_keyword", keyword="SURF", mode="0") == {}
    assert await api.ok("associate_keyword", keyword="surf report", mode="0") == {}
    assert await api.pool.fetchval("SELECT array_agg(keyword || ':' || mode ORDER BY keyword) FROM engine_keyword") == [
        "SURF:0", "surf report:0"]

    other_key = await shared_app(api, "other")
    errors = (await api.call("associate_keyword", key=other_key, keyword="sUrF"))[1]["errors"]
    assert len(errors) == 1 and "another application" in errors[0]
    errors = (await api.call("validate_keyword", key=other_key, keyword="su", mode="1"))[1]["errors"]
    assert len(errors) == 2  # would capture both SURF and surf report
    assert (await api.call("associate_keyword", key=other_key, keyword="surfing", mode="0"))[1] == {}
    # A starts-with keyword of this app that the other app's keyword starts with: conflict.
    errors = (await api.ok("associate_keyword", keyword="SURFI", mode="1"))["errors"]
    assert any("surfing" in e for e in errors)
    errors = (await api.call("dissociate_keyword", key=other_key, keyword="surf"))[1]["errors"]
    assert "another application" in errors[0]
    assert await api.ok("dissociate_keyword", keyword="surf") == {}
    assert (await api.ok("dissociate_keyword", keyword="surf"))["errors"][0].endswith("not associated with this "
                                                                                      "application")
    assert await api.pool.fetchval("SELECT array_agg(keyword ORDER BY keyword) FROM engine_keyword") == [
        "surf report", "surfing"]


async def test_keyword_format_and_reserved_words(api: Api) -> None:
    for keyword in ("STOP", "help", "opt in", "stop please", "bad:char", "x" * 33):
        body = await api.ok("validate_keyword", keyword=keyword)
        assert len(body["errors"]) == 1, keyword
        body = await api.ok("associate_keyword", keyword=keyword)
        assert len(body["errors"]) == 1, keyword
    assert await api.count("engine_keyword") == 0
    await api.bad("associate_keyword", "keyword")
    await api.bad("associate_keyword", "mode", keyword="surf", mode="2")
    await api.bad("associate_keyword", "auto_subscribe", keyword="surf", auto_subscribe="sometimes")


# ---- end to end ---------------------------------------------------------------------------------


def test_fake_carrier_offers_valid_numbers_matching_the_pattern() -> None:
    rng = random.Random(3)
    anywhere = available_numbers(rng, "US", "2024", 10)
    assert len(anywhere) == 10 and all("2024" in n[2:] for n in anywhere)
    anchored = available_numbers(rng, "US", "+1347***", 10, taken={"+13472000000"})
    assert anchored and all(n.startswith("+1347") for n in anchored)
    vanity = available_numbers(rng, "US", "BOOK", 3)  # keypad letters: 2665
    assert vanity and all("2665" in n for n in vanity)
    for n in anywhere + anchored + vanity:
        parsed = phonenumbers.parse(n)
        assert phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == "US"
    assert available_numbers(rng, "US", "+44", 3) == []


async def test_end_to_end_send_through_the_api_then_delivered(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        new = await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID, "+16462000002"])
        async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
            base = running.runtime.base_url
            resp = await session.post(f"{base}/api/send_message",
                                             data={"api_key": new.api_key, "phone_number": "+1(347)264-3707",
                                                   "body": "Your hold is ready"})
            assert resp.status == 200
            (mid,) = ids_of(await resp.json())
            await wait_final(pool, 1, timeout=30)
            resp = await session.post(f"{base}/api/delivery_status",
                                             data={"api_key": new.api_key, "message_ids": str(mid)})
            assert await resp.json() == {str(mid): 1}
        assert [(r.to, r.body) for r in fake.records] == [("+13472643707", "Your hold is ready")]


async def test_body_over_the_segment_limit_is_refused_and_changes_nothing(api: Api) -> None:
    # 700 UCS-2 characters are 11 segments: over the default maximum of 10, although under 1,600 characters.
    status, body = await api.call("send_message", phone_number="3472643707", body="é😀" * 350)
    assert status == 400 and body["error"].startswith("body") and "segments" in body["error"]
    assert await api.count("engine_outbound") == 0
