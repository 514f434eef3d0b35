"""The console's Messages pages over real HTTP against a real database: the tracking list with every filter and
its keyset pages (the same messages, in the same order, as the tracking API's rules give), bad filters said on the
page by name, a message's page with its status timeline (the real engine and the fake carrier), and resending it
to a corrected number: queued only with the session's CSRF token and a valid phone, refused with the API's
reasons, and nothing at all for an anonymous request."""

from __future__ import annotations

import html
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from engine.store import admin
from engine.store.tracking import STATES_BY_STATUS
from engine.submit import Outgoing, submit_many
from tests.helpers.console import add_operator, console_server, logged_in
from tests.helpers.database import wait_final
from tests.helpers.engine import add_fake_app, carrier, engine_running
from tests.helpers.tracking import expected_ids, insert_messages

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DID = "+16462000001"
_STATUS = {s: code for code, states in STATES_BY_STATUS.items() for s in states}


async def _history(pool: asyncpg.Pool, lib: int = 130, crm: int = 40) -> list[dict[str, Any]]:
    """Messages of two applications with spread phones, states, types, tags, jobs and times (several per
    timestamp, so the order's tie-break on id counts)."""
    rnd = random.Random(11)
    apps = {r["name"]: r["id"] for r in await pool.fetch("SELECT id, name FROM engine_app")}
    jobs = [await pool.fetchval("INSERT INTO engine_job (app_id, source) VALUES ($1, 'api') RETURNING id",
                                apps["lib"]) for _ in range(2)]
    rows: list[dict[str, Any]] = []
    for i in range(lib + crm):
        app = "lib" if i < lib else "crm"
        state = rnd.choice(list(_STATUS))
        rows.append({
            "app_id": apps[app], "recipient": f"+1212200{rnd.randrange(6):04d}", "body": f"message {i}",
            "state": state, "status": _STATUS[state], "type": rnd.choice([None, "reminder", "registration"]),
            "tag": rnd.choice([None, None, "t1"]), "job_id": rnd.choice([None, *jobs]) if app == "lib" else None,
            "created_at": NOW - timedelta(minutes=rnd.randrange(240)),
        })
    return await insert_messages(pool, rows)


def _listed(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-message="(\d+)">', page)]


def _alert(page: str) -> str:
    return html.unescape(page.split('role="alert">')[1].split("</p>")[0])


async def _walk(session: aiohttp.ClientSession, base: str, params: dict[str, str]) -> list[int]:
    """Every page of the list, following its "Older" link; the ids in order."""
    async with session.get(base + "/console/messages", params=params) as resp:
        assert resp.status == 200, await resp.text()
        page = await resp.text()
    ids = _listed(page)
    while (more := re.search(r'<a href="([^"]+)" id="next-page"', page)) is not None:
        assert len(_listed(page)) == 50
        async with session.get(base + html.unescape(more.group(1))) as resp:
            assert resp.status == 200
            page = await resp.text()
        ids += _listed(page)
        assert 'id="newest-page"' in page
    return ids


async def test_the_list_filters_and_pages_like_the_tracking_api(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    for name in ("lib", "crm"):
        await admin.create_app(pool, name)
    rows = await _history(pool)
    lib = rows[0]["app_id"]
    job = next(r["job_id"] for r in rows if r["job_id"] is not None)
    phone = rows[0]["recipient"]
    since, until = NOW - timedelta(minutes=180), NOW - timedelta(minutes=60)
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({}, {}),
        ({"app": "lib"}, {"app_id": lib}),
        ({"phone": f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"}, {"recipient": phone}),  # as a person types it
        ({"status": "2"}, {"states": set(STATES_BY_STATUS[2])}),
        ({"status": "delivered"}, {"states": {"delivered"}}),
        ({"status": "0,4"}, {"states": {*STATES_BY_STATUS[0], "sent"}}),
        ({"type": "reminder", "app": "lib"}, {"type": "reminder", "app_id": lib}),
        ({"tag": "t1"}, {"tag": "t1"}),
        ({"job_id": str(job)}, {"job_id": job}),
        ({"since": since.isoformat(), "until": until.isoformat()}, {"since": since, "until": until}),
        ({"since": "today", "until": "11:00"}, {"since": NOW.replace(hour=0), "until": NOW.replace(hour=11)}),
        ({"phone": phone, "status": "1,2", "app": "crm"},
         {"recipient": phone, "states": {"delivered", *STATES_BY_STATUS[2]}, "app_id": rows[-1]["app_id"]}),
    ]
    async with console_server(pool, now=lambda: NOW) as served:
        session, _ = await logged_in(served.base)
        async with session:
            for params, want in cases:
                expected = expected_ids(rows, **want)
                assert expected or params == {"phone": phone, "status": "1,2", "app": "crm"}
                assert await _walk(session, served.base, params) == expected, params
            async with session.get(served.base + "/console/messages") as resp:
                page = await resp.text()
            # Both applications: the app column and the choice; a row's phone and job lead to their lists.
            assert "<th>app</th>" in page and '<select name="app">' in page
            first = next(r for r in rows if r["id"] == _listed(page)[0])
            row = page.split(f'<tr data-message="{first["id"]}">')[1].split("</tr>")[0]
            assert f'href="/console/message/{first["id"]}"' in row and first["body"] in row
            assert f'href="/console/messages?phone={first["recipient"].replace("+", "%2B")}"' in row
            # The navigation: Messages right after Overview.
            nav = re.findall(r'<a href="(/console/[^"]*)"', page.split("<nav>")[1].split("</nav>")[0])
            assert nav[:2] == ["/console/", "/console/messages"]
            assert 'aria-current="page">Messages' in page


async def test_bad_filters_are_said_on_the_page_by_name(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) SELECT id, '+12122000001', 'hello' "
                       "FROM engine_app")
    cases = [
        ({"status": "bogus"}, "status: 'bogus' is neither a status code"),
        ({"status": "3"}, "status: '3' is not a status code"),
        ({"phone": "12"}, "phone: '12' is not a valid phone number"),
        ({"job_id": "seven"}, "job_id: 'seven' is not a message id"),
        ({"since": "whenever"}, "since: "),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until: must be after since"),
        ({"cursor": "not-a-cursor"}, "cursor: is not a cursor this server gave"),
        ({"app": "nope"}, "app: no application named 'nope'"),
        ({"tag": "x" * 300}, "tag: at most 255 characters"),
    ]
    async with console_server(pool, now=lambda: NOW) as served:
        session, _ = await logged_in(served.base)
        async with session:
            for params, said in cases:
                async with session.get(served.base + "/console/messages", params=params) as resp:
                    page = await resp.text()
                assert resp.status == 400, params
                assert _alert(page).startswith(said), (params, _alert(page))
                assert _listed(page) == [] and "Fix the filter above." in page
                for name, value in params.items():  # what was typed stays in the form, to correct it
                    if name not in ("cursor", "app", "status"):
                        assert f'name="{name}" value="{html.escape(value)}"' in page
            async with session.get(served.base + "/console/message", params={"message_id": "abc"}) as resp:
                assert resp.status == 400 and _alert(await resp.text()).startswith("message_id: 'abc'")
            mid = await pool.fetchval("SELECT id FROM engine_outbound")
            async with session.get(served.base + "/console/message", params={"message_id": f" {mid} "},
                                   allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == f"/console/message/{mid}"
            for path in ("/console/message/999999", "/console/message/99999999999999999999"):
                async with session.get(served.base + path) as resp:
                    assert resp.status == 404


async def test_a_message_page_shows_its_timeline_and_resends_to_a_corrected_number(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    await add_operator(pool)
    async with carrier() as fake:
        await add_fake_app(pool, fake.base_url or "", name="lib", numbers=[DID], limit_per_min=6000)
        async with engine_running(db_dsn) as run:
            (mid,) = await submit_many(pool, "lib", [Outgoing("+13472643707", "Your hold is ready", tag="holds")])
            await wait_final(pool, 1)
            session, token = await logged_in(run.base_url)
            async with session:
                async with session.get(run.base_url + f"/console/message/{mid}") as resp:
                    assert resp.status == 200
                    page = await resp.text()
                assert 'id="message-state">delivered' in page and "Your hold is ready</div>" in page
                sid = await pool.fetchval("SELECT provider_message_id FROM engine_outbound WHERE id = $1", mid)
                fields = page.split('id="message-fields">')[1].split("</dl>")[0]
                assert DID in fields and f"<code>{sid}</code>" in fields and "GSM-7" in fields
                assert 'hx-get="/console/message/' not in page  # final: the page no longer polls
                timeline = page.split('id="timeline">')[1].split("</table>")[0]
                events = re.findall(r'<tr data-event="(\w+)"', timeline)
                steps = await pool.fetchval("SELECT count(*) FROM engine_message_event WHERE message_id = $1", mid)
                assert len(events) == steps + 1 and events[:2] == ["created", "engine"]
                assert events[-1] == "carrier" and "delivered" in timeline.split("<tr")[-1]
                assert f"via {DID}" in timeline

                # Resent to a corrected number: the new message's page, linked both ways, then delivered.
                async with session.post(run.base_url + f"/console/message/{mid}/resend",
                                        data={"csrf_token": token, "phone": "(212) 555-0199"}) as resp:
                    assert resp.status == 200
                    new = int(str(resp.url).split("/console/message/")[1].split("?")[0])
                    assert str(resp.url).endswith("?done=resent")
                    page = await resp.text()
                assert "Resent: this is the new message" in page
                assert f'id="resent-from">#{mid}</a>' in page
                row = await pool.fetchrow("SELECT recipient, body, tag, resent_from FROM engine_outbound "
                                          "WHERE id = $1", new)
                assert dict(row) == {"recipient": "+12125550199", "body": "Your hold is ready", "tag": "holds",
                                     "resent_from": mid}
                await wait_final(pool, 2)
                async with session.get(run.base_url + f"/console/message/{new}/live",
                                       headers={"HX-Request": "true"}) as resp:
                    live = await resp.text()
                assert resp.status == 200 and 'id="message-state">delivered' in live and "<html" not in live
                async with session.get(run.base_url + f"/console/message/{mid}") as resp:
                    assert f'class="resend">#{new}</a>' in await resp.text()
    assert [r.to for r in fake.records] == ["+13472643707", "+12125550199"]


async def test_a_resend_is_refused_with_the_apis_reasons_and_queues_nothing(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    app = (await admin.create_app(pool, "lib")).app_id

    async def message(state: str, phone: str = "+13472643707", expires: datetime | None = None) -> int:
        mid: int = await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, state, expires_at) "
                                       "VALUES ($1, $2, 'Storytime at 10', $3, $4) RETURNING id",
                                       app, phone, state, expires)
        return mid

    delivered = await message("delivered")
    queued = await message("queued")
    expired = await message("failed", expires=NOW - timedelta(seconds=1))
    await pool.execute("INSERT INTO engine_blacklist (app_id, phone) VALUES ($1, '+13472640000')", app)
    async with console_server(pool, now=lambda: NOW) as served:
        session, token = await logged_in(served.base)
        async with session:
            async def resend(mid: int, **fields: str) -> tuple[int, str]:
                async with session.post(served.base + f"/console/message/{mid}/resend",
                                        data={"csrf_token": token, **fields}) as resp:
                    return resp.status, await resp.text()

            total = await pool.fetchval("SELECT count(*) FROM engine_outbound")
            cases = [
                ((delivered, {"phone": "12"}), 400, "phone: '12' is not a valid phone number"),
                ((delivered, {"phone": "+1 347 264 0000"}), 409, "Not resent (blacklisted): the phone opted out"),
                ((queued, {}), 409, f"Not resent (not sent): message {queued} has not been sent yet"),
                ((expired, {}), 409, f"Not resent (expired): message {expired} expired at"),
            ]
            for (mid, fields), status, said in cases:
                got, page = await resend(mid, **fields)
                assert (got, _alert(page)[:len(said)]) == (status, said)
                assert f'value="{html.escape(fields.get("phone", ""))}"' in page  # the typed number, to correct
            got, page = await resend(999999, phone="+12125550199")
            assert got == 404 and "There is no message 999999" in page
            # Without the session's CSRF token: refused, whatever the rest of the form says.
            async with session.post(served.base + f"/console/message/{delivered}/resend",
                                    data={"phone": "+12125550199"}) as resp:
                assert resp.status == 403 and "CSRF token is missing or wrong" in await resp.text()
            async with session.post(served.base + f"/console/message/{delivered}/resend",
                                    data={"phone": "+12125550199", "csrf_token": "0" * 64}) as resp:
                assert resp.status == 403
            assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == total
            # The same message resent as it was (no corrected number): to its own phone.
            got, page = await resend(delivered, phone="  ")
            assert got == 200 and "Resent: this is the new message" in page
            assert await pool.fetchval("SELECT recipient FROM engine_outbound WHERE resent_from = $1",
                                       delivered) == "+13472643707"


async def test_anonymous_requests_are_refused_and_queue_nothing(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    mid = await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, state) SELECT id, "
                              "'+13472643707', 'hello', 'delivered' FROM engine_app RETURNING id")
    async with console_server(pool) as served, aiohttp.ClientSession() as anonymous:
        for path in ("/console/messages?phone=%2B13472643707", f"/console/message/{mid}"):
            async with anonymous.get(served.base + path, allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"].startswith("/console/login?next=")
                assert "hello" not in await resp.text()
        async with anonymous.get(served.base + f"/console/message/{mid}/live",
                                 headers={"HX-Request": "true"}) as resp:
            assert resp.status == 401
        async with anonymous.post(served.base + f"/console/message/{mid}/resend",
                                  data={"phone": "+12125550199", "csrf_token": "x"}) as resp:
            assert resp.status == 401
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 1


async def test_jobs_and_conversations_lead_to_their_messages(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    app = (await admin.create_app(pool, "lib")).app_id
    job = await pool.fetchval("INSERT INTO engine_job (app_id, source, total) VALUES ($1, 'api', 1) RETURNING id", app)
    mid = await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, job_id) "
                              "VALUES ($1, '+13472643707', 'hello', $2) RETURNING id", app, job)
    async with console_server(pool) as served:
        session, _ = await logged_in(served.base)
        async with session:
            async with session.get(served.base + f"/console/jobs/{job}") as resp:
                link = re.search(r'<a href="([^"]+)" id="job-messages"', await resp.text())
            assert link is not None
            async with session.get(served.base + html.unescape(link.group(1))) as resp:
                assert _listed(await resp.text()) == [mid]
            async with session.get(served.base + "/console/inbound/phone?phone=%2B13472643707") as resp:
                page = await resp.text()
            link = re.search(r'<a href="([^"]+)" id="phone-messages"', page)
            assert link is not None and f'href="/console/message/{mid}"' in page
            async with session.get(served.base + html.unescape(link.group(1))) as resp:
                assert _listed(await resp.text()) == [mid]
