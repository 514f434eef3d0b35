"""The job calls over real loopback HTTP against a real database: send_job (JSON, an uploaded CSV, a CSV field),
validation with nothing queued, skip_invalid, job_status, pause/resume/cancel, other apps' jobs; send_messages
makes a job."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.api.carousel import CarouselApi
from engine.config import Settings
from engine.store import jobs
from tests.helpers.engine import add_fake_app

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    key: str
    other_key: str
    app_id: int
    pool: asyncpg.Pool

    async def post(self, name: str, data: dict[str, str] | aiohttp.FormData, key: str | None = None
                   ) -> tuple[int, Any]:
        if isinstance(data, dict):
            data = {"api_key": key or self.key, **data}
        async with self.client.post(f"/api/{name}", data=data) as resp:
            assert resp.content_type == "application/json"
            return resp.status, orjson.loads(await resp.read())

    async def ok(self, call: str, **params: str) -> Any:
        status, body = await self.post(call, params)
        assert status == 200, body
        return body

    async def messages(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch("SELECT * FROM engine_outbound ORDER BY id")
        return rows


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    new = await add_fake_app(pool, "http://127.0.0.1:9", name="lib", numbers=["+16462000001"])
    other = await add_fake_app(pool, "http://127.0.0.1:9", name="other", numbers=["+16462000002"])
    handlers = CarouselApi(pool, Settings(max_body_chars=300, max_segments=3), clock=lambda: NOW, cache_seconds=0)
    app = web.Application()
    app.add_routes(handlers.routes())
    async with TestClient(TestServer(app)) as client:
        yield Api(client, new.api_key, other.api_key, new.app_id, pool)


CSV = "Phone;Name;When\n212 555 0100;Al;Monday\n(212) 555-0101;Bo;Tuesday\n"


async def test_send_job_with_json_recipients(api: Api) -> None:
    on = NOW + timedelta(days=1)
    reply = await api.ok("send_job", template="Hi {{name}}, see you {{day}}", tag="events", type="reminder",
                         category="marketing", valid_for="2h", on="2026-09-02T12:00:00Z",
                         recipients=orjson.dumps({"2125550100": {"name": "Al", "day": "Monday"},
                                                  "2125550101": {"name": "Bo", "day": 3}}).decode())
    assert reply == {"job_id": reply["job_id"], "recipients": 2, "messages": 2, "skipped": []}
    rows = await api.messages()
    assert [(r["recipient"], r["body"]) for r in rows] == [
        ("+12125550100", "Hi Al, see you Monday"), ("+12125550101", "Hi Bo, see you 3")]
    for r in rows:
        assert str(r["job_id"]) == reply["job_id"] and r["tag"] == "events" and r["type"] == "reminder"
        assert r["category"] == "marketing" and r["send_at"] == on and r["expires_at"] == on + timedelta(hours=2)
    job = await jobs.get_job(api.pool, int(reply["job_id"]))
    assert (job.source, job.name, job.template, job.total, job.state) == (
        "api", None, "Hi {{name}}, see you {{day}}", 2, "running")


async def test_send_job_with_an_uploaded_csv(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("api_key", api.key)
    form.add_field("template", "{{Name}}: see you {{When}}")
    form.add_field("csv", ("\ufeff" + CSV).encode(), filename="members.csv", content_type="text/csv")
    status, reply = await api.post("send_job", form)
    assert status == 200, reply
    assert (reply["recipients"], reply["messages"], reply["skipped"]) == (2, 2, [])
    assert [r["body"] for r in await api.messages()] == ["Al: see you Monday", "Bo: see you Tuesday"]
    job = await jobs.get_job(api.pool, int(reply["job_id"]))
    assert (job.source, job.name) == ("api", "members.csv")
    # The CSV's text as a plain field works as well (here with another phone column and a label).
    reply = await api.ok("send_job", template="Hi {{Name}}", csv=CSV.replace("Phone", "mobile"),
                         phone_column="mobile", name="September")
    assert reply["messages"] == 2 and (await jobs.get_job(api.pool, int(reply["job_id"]))).name == "September"


async def test_invalid_rows_fail_the_call_by_line_and_nothing_is_queued(api: Api) -> None:
    text = "phone,name\n2125550100,Al\n12,Bo\n2125550102,\n2125550103,Di\n"
    status, body = await api.post("send_job", {"template": "Hi {{name}}", "csv": text})
    assert status == 400
    assert body["error"].startswith("csv: 2 of 4 recipients cannot be sent, nothing was queued")
    assert body["invalid"] == [{"line": 3, "phone": "12", "problem": "'12' is not a valid phone number"},
                               {"line": 4, "phone": "2125550102", "problem": "no value for {{name}}"}]
    assert await api.messages() == []
    assert await api.pool.fetchval("SELECT count(*) FROM engine_job") == 0
    # The same with skip_invalid: the others go, the skipped are reported.
    reply = await api.ok("send_job", template="Hi {{name}}", csv=text, skip_invalid="yes")
    assert (reply["recipients"], [s["line"] for s in reply["skipped"]]) == (2, [3, 4])
    assert [r["recipient"] for r in await api.messages()] == ["+12125550100", "+12125550103"]
    # JSON recipients are named by position.
    status, body = await api.post("send_job", {"template": "Hi {{name}}", "recipients": '{"2125550100": {}}'})
    assert status == 400 and body["invalid"] == [
        {"line": 1, "phone": "2125550100", "problem": "no value for {{name}}"}]


@pytest.mark.parametrize(("params", "param"), [
    ({"recipients": '{"2125550100": {}}'}, "template"),
    ({"template": "Hi"}, "recipients"),
    ({"template": "Hi", "recipients": '{"2125550100": {}}', "csv": "phone\n2125550100\n"}, "recipients"),
    ({"template": "Hi {{x}}", "csv": "phone\n2125550100\n"}, "csv"),
    ({"template": "Hi", "csv": "phone\n2125550100\n", "category": "promo"}, "category"),
    ({"template": "Hi", "csv": "phone\n2125550100\n", "valid_for": "soon"}, "valid_for"),
    ({"template": "Hi", "csv": "phone\n2125550100\n", "on": "someday"}, "on"),
    ({"template": "Hi", "csv": "phone\n2125550100\n", "skip_invalid": "maybe"}, "skip_invalid"),
    ({"template": "x" * 301, "csv": "phone\n2125550100\n"}, "template"),
])
async def test_bad_parameters_are_400_naming_them(api: Api, params: dict[str, str], param: str) -> None:
    status, body = await api.post("send_job", params)
    assert status == 400 and body["error"].startswith(f"{param}:"), body
    assert await api.pool.fetchval("SELECT count(*) FROM engine_job") == 0


async def test_job_status_pause_resume_cancel(api: Api) -> None:
    recipients = {f"21255501{i:02d}": {"n": i} for i in range(10)}
    job_id = (await api.ok("send_job", template="#{{n}}", recipients=orjson.dumps(recipients).decode()))["job_id"]
    await api.pool.execute("""UPDATE engine_outbound SET state = 'delivered', status = 1, status_rank = 100,
                                  sending_at = now()
                              WHERE id IN (SELECT id FROM engine_outbound ORDER BY id LIMIT 3)""")
    await api.pool.execute("""UPDATE engine_outbound SET state = 'sent', status = 4, status_rank = 10,
                                  sending_at = now()
                              WHERE id IN (SELECT id FROM engine_outbound WHERE state = 'queued'
                                           ORDER BY id LIMIT 2)""")
    status = await api.ok("job_status", job_id=job_id)
    assert status["state"] == "running" and status["total"] == 10 and status["final"] == 3
    assert status["counts"] == {"queued": 5, "sending": 0, "sent": 2, "delivered": 3, "failed": 0, "unknown": 0,
                                "canceled": 0, "expired": 0, "suppressed": 0}
    assert status["by_state"] == {"delivered": 3, "queued": 5, "sent": 2}
    assert status["by_status"] == {"0": 5, "1": 3, "2": 0, "4": 2}
    assert status["rate"] > 0 and status["eta_seconds"] is not None and status["capacity_per_s"] == 1.0

    paused = await api.ok("pause_job", job_id=job_id)
    assert (paused["state"], paused["paused_count"]) == ("paused", 5)
    assert (await api.ok("job_status", job_id=job_id))["eta_seconds"] is None
    resumed = await api.ok("resume_job", job_id=job_id)
    assert (resumed["state"], resumed["resumed_count"]) == ("running", 5)
    canceled = await api.ok("cancel_job", job_id=job_id)
    assert (canceled["state"], canceled["canceled_count"]) == ("canceled", 5)
    status = await api.ok("job_status", job_id=job_id)
    assert status["counts"]["canceled"] == 5 and status["by_status"]["2"] == 5 and status["finished_at"] is None
    code, body = await api.post("resume_job", {"job_id": job_id})
    assert code == 409 and "canceled" in body["error"]

    # Another application's job is not there for this one.
    for call in ("job_status", "pause_job", "resume_job", "cancel_job"):
        code, body = await api.post(call, {"job_id": job_id}, key=api.other_key)
        assert code == 404 and body["error"] == f"no job {job_id} for this application", (call, body)
    for bad in ("", "abc", "0", "-1", "99999999999999999999"):
        code, body = await api.post("job_status", {"job_id": bad})
        assert code == 400 and body["error"].startswith("job_id:")
    code, body = await api.post("job_status", {"job_id": "424242"})
    assert code == 404


async def test_send_messages_becomes_a_job(api: Api) -> None:
    reply = await api.ok("send_messages", template="Hello, {{name}}",
                         recipients='{"2125550100": {"name": "Al"}, "123": {"name": "Nobody"}}')
    assert set(reply) == {"message_ids", "job_id"}
    ids = reply["message_ids"].split(",")
    assert ids[1] == "-1"
    job = await jobs.get_job(api.pool, int(reply["job_id"]))
    assert (job.source, job.template, job.total, job.app_id) == ("send_messages", "Hello, {{name}}", 1, api.app_id)
    assert [str(r["id"]) for r in await api.messages() if r["job_id"] == job.id] == ids[:1]
    status = await api.ok("job_status", job_id=reply["job_id"])
    assert status["source"] == "send_messages" and status["counts"]["queued"] == 1
    # send_message (one body) is not a job.
    assert set(await api.ok("send_message", phone_number="2125550101", body="hi")) == {"message_ids"}


async def test_a_csv_upload_may_be_larger_than_other_calls_bodies(api: Api) -> None:
    """Other calls' bodies stop at 1 MiB (413); send_job takes a CSV of tens of thousands of rows."""
    lines = "".join(f"+1718{2000000 + i},Member number {i} of the library\n" for i in range(30_000))
    data = ("phone,name\n" + lines).encode()
    assert len(data) > 1024 * 1024
    form = aiohttp.FormData()
    form.add_field("api_key", api.key)
    form.add_field("template", "Hi {{name}}")
    form.add_field("csv", io.BytesIO(data), filename="big.csv", content_type="text/csv")
    status, reply = await api.post("send_job", form)
    assert status == 200, reply
    assert reply["messages"] == 30_000
    assert await api.pool.fetchval("SELECT count(*) FROM engine_outbound") == 30_000
    big = io.BytesIO(f"api_key={api.key}&template=x&recipients={{{' ' * 1024 * 1024}}}".encode())
    async with api.client.post("/api/send_messages", data=big,
                               headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 413
