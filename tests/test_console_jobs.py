"""The Jobs page over real HTTP: an upload is checked by `engine send`'s rules and previewed (the first rendered
messages with their segments, every invalid line by number) with nothing queued; only the operator's confirmation
queues it, and with invalid lines only when they chose to skip them; a preview is used once; a bad template or a
missing file is refused by name; pause/resume/cancel follow the job's rules."""

from __future__ import annotations

import re

import aiohttp
import asyncpg

from engine.store import admin
from tests.helpers.console import add_operator, console_server, logged_in

TEMPLATE = "Hi {{name}}, your book {{title}} is ready"
CSV = ("phone,name,title\n"
       "+13472643701,Ann,Dune\n"
       "not a phone,Bob,Emma\n"
       "+13472643703,,Ulysses\n"
       "+13472643704,Dee," + "A very long title that goes on " * 6 + "\n"
       "+13472643705,Eve,Beloved\n")


async def _upload(session: aiohttp.ClientSession, base: str, token: str | None, csv: str = CSV,
                  template: str = TEMPLATE, **extra: str) -> tuple[int, str]:
    data = aiohttp.FormData()
    if token is not None:
        data.add_field("csrf_token", token)
    for name, value in {"app": "lib", "template": template, "phone_column": "phone", **extra}.items():
        data.add_field(name, value)
    data.add_field("csv", csv.encode(), filename="readers.csv", content_type="text/csv")
    async with session.post(base + "/console/jobs/preview", data=data) as resp:
        return resp.status, await resp.text()


async def _post(session: aiohttp.ClientSession, url: str, **fields: str) -> tuple[int, str, str]:
    async with session.post(url, data=fields) as resp:
        return resp.status, str(resp.url), await resp.text()


def _draft(html: str) -> str:
    found = re.search(r'name="draft" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_preview_then_confirm_queues_only_when_told(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            status, html = await _upload(session, served.base, token)
            assert status == 200
            assert "<strong>3</strong> of 5 lines can be sent" in html
            preview = html.split('id="preview"')[1].split("</table>")[0]
            assert "Hi Ann, your book Dune is ready" in preview and "+13472643701" in preview
            rows = re.findall(r'<tr><td class="num">(\d+)</td>.*?<td class="num">(\d+)</td></tr>', preview, re.S)
            assert rows == [("2", "1"), ("5", "2"), ("6", "1")]  # (line, segments): the long title takes two
            invalid = html.split('id="invalid"')[1].split("</table>")[0]
            assert re.findall(r'<tr><td class="num">(\d+)</td>', invalid) == ["3", "4"]
            assert "is not a valid phone number" in invalid and "no value for {{name}}" in invalid
            assert await pool.fetchval("SELECT count(*) FROM engine_job") == 0  # a preview queues nothing

            draft = _draft(html)
            status, _, html = await _post(session, served.base + "/console/jobs/start", csrf_token=token, draft=draft)
            assert status == 400 and "2 of 5 lines cannot be sent" in html
            assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 0

            status, url, _ = await _post(session, served.base + "/console/jobs/start", csrf_token=token,
                                         draft=draft, skip_invalid="yes")
            assert status == 200 and url.endswith("?done=job-started"), url
            job = await pool.fetchrow("SELECT id, source, name, template, total, state FROM engine_job")
            assert url.endswith(f"/console/jobs/{job['id']}?done=job-started")
            assert (job["source"], job["name"], job["template"], job["total"]) == ("csv", "readers.csv", TEMPLATE, 3)
            bodies = [r["body"] for r in await pool.fetch("SELECT body FROM engine_outbound ORDER BY id")]
            assert bodies[0] == "Hi Ann, your book Dune is ready" and len(bodies) == 3

            # A preview is confirmed once: again, and nothing more is queued.
            status, _, html = await _post(session, served.base + "/console/jobs/start", csrf_token=token,
                                          draft=draft, skip_invalid="yes")
            assert status == 409 and "expired" in html
            assert await pool.fetchval("SELECT count(*) FROM engine_job") == 1

            # The job page, then pause / resume / cancel with their rules (no worker runs: all stay queued).
            async with session.get(served.base + f"/console/jobs/{job['id']}") as page:
                assert page.status == 200 and 'id="job-state">running' in await page.text()
            for action, state in (("pause", "paused"), ("resume", "running"), ("cancel", "canceled")):
                status, url, _ = await _post(session, served.base + f"/console/jobs/{job['id']}/{action}",
                                             csrf_token=token)
                assert status == 200 and url.endswith(f"done=job-{state if state != 'running' else 'resumed'}")
                assert await pool.fetchval("SELECT state FROM engine_job") == state
            assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE state = 'canceled'") == 3
            status, _, html = await _post(session, served.base + f"/console/jobs/{job['id']}/pause",
                                          csrf_token=token)
            assert status == 409 and "only a running job can be paused" in html
            async with session.get(served.base + "/console/jobs") as page:
                assert f'href="/console/jobs/{job["id"]}"' in await page.text()
            async with session.get(served.base + "/console/jobs/999999") as page:
                assert page.status == 404


async def test_bad_uploads_are_refused_by_name_and_queue_nothing(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            status, html = await _upload(session, served.base, None)
            assert status == 403 and "CSRF" in html
            status, html = await _upload(session, served.base, token, template="Hi {{nickname}}")
            assert status == 400 and "has no column for the template&#39;s {{nickname}}" in html
            status, html = await _upload(session, served.base, token, csv="name\nAnn\n")
            assert status == 400 and "has no &#39;phone&#39; column" in html
            status, html = await _upload(session, served.base, token, on="not a time at all")
            assert status == 400 and 'role="alert">on: ' in html
            status, html = await _upload(session, served.base, token, app="nope")
            assert status == 400 and "nope" in html.split('role="alert">')[1].split("</p>")[0]
            status, html = await _upload(session, served.base, token, csv="phone\nxx\n", template="Hello")
            assert status == 200 and "No line can be sent" in html and 'id="confirm"' not in html
            status, _, html = await _post(session, served.base + "/console/jobs/start", csrf_token=token,
                                          draft="made-up", skip_invalid="yes")
            assert status == 409
            assert await pool.fetchval("SELECT count(*) FROM engine_job") == 0
