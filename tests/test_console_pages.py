"""The console's pages over real HTTP, for what the browser scenarios do not reach: an untouched form changes
nothing, keywords through the API's own rules, a dead letter retried, the segment counter's rules, bad input
refused by name, unknown apps and SMSCs."""

from __future__ import annotations

import aiohttp
import asyncpg

from engine.events import PHONE_BLACKLISTED, phone_event
from engine.store import admin
from engine.store.outbox import NewEvent, enqueue_events
from tests.helpers.console import add_operator, console_server, logged_in


async def _post(session: aiohttp.ClientSession, url: str, token: str, **fields: str) -> tuple[int, str, str]:
    async with session.post(url, data={"csrf_token": token, **fields}) as resp:
        return resp.status, str(resp.url), await resp.text()


async def test_an_untouched_settings_form_changes_nothing(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    await pool.execute("UPDATE engine_app SET flood_limit = 10, flood_period = interval '1 hour', "
                       "help_text = 'Line one\nline two'")
    before = dict(await pool.fetchrow("SELECT * FROM engine_app"))
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            async with session.get(served.base + "/console/apps/lib") as page:
                html = await page.text()
            assert 'value="10/1h"' in html and "Line one\nline two</textarea>" in html
            assert 'value="1y6mo"' in html and 'value="08:00-21:00"' in html
            # What a browser sends back for the untouched form: every field as shown, text areas with CR LF.
            fields = {"flood_limit": "10/1h", "help_text": "Line one\r\nline two", "split_mode": "character",
                      "smart_encoding": "no", "dedup_window": "600", "callback_concurrency": "4",
                      "smsc_limit_per_min": "off", "session_idle": "1d", "loop_max_replies": "10",
                      "loop_window": "1m", "loop_max_repeats": "5", "loop_cooldown": "1h", "gateway_url": "",
                      "valid_for": "off", "retention": "1y6mo", "quiet_hours": "yes", "quiet_window": "08:00-21:00"}
            status, url, _ = await _post(session, served.base + "/console/apps/lib/settings", token, **fields)
            assert status == 200 and url.endswith("done=nothing")
            assert dict(await pool.fetchrow("SELECT * FROM engine_app")) == before
            status, url, html = await _post(session, served.base + "/console/apps/lib/settings", token,
                                            **(fields | {"loop_window": "2h"}))
            assert status == 400 and "--loop-cooldown" in html  # the same rule as `engine app set`
            assert dict(await pool.fetchrow("SELECT * FROM engine_app")) == before
            status, url, _ = await _post(session, served.base + "/console/apps/lib/settings", token,
                                         **(fields | {"flood_limit": "off", "split_mode": "word"}))
            assert url.endswith("done=saved")
            row = await pool.fetchrow("SELECT flood_limit, split_mode, help_text FROM engine_app")
            assert tuple(row) == (None, "word", "Line one\nline two")
            # Lifetime, retention and quiet hours: main's own rules (`engine app set --valid-for …`).
            fields |= {"flood_limit": "off", "split_mode": "word"}
            status, url, html = await _post(session, served.base + "/console/apps/lib/settings", token,
                                            **(fields | {"quiet_window": "22:00-23:00"}))
            assert status == 400 and "--quiet-window" in html
            status, url, _ = await _post(session, served.base + "/console/apps/lib/settings", token,
                                         **(fields | {"valid_for": "2h", "retention": "90d",
                                                      "quiet_window": "09:00-20:00"}))
            assert url.endswith("done=saved")
            row = await pool.fetchrow("SELECT extract(epoch FROM valid_for)::int, retention::text, "
                                      "quiet_start::text, quiet_end::text FROM engine_app")
            assert tuple(row) == (7200, "90 days", "09:00:00", "20:00:00")
            async with session.get(served.base + "/console/apps/lib") as page:
                html = await page.text()
            assert 'value="2h"' in html and 'value="90d"' in html and 'value="09:00-20:00"' in html


async def test_keywords_through_the_apis_rules(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    await admin.create_app(pool, "crm", smsc="lib-smsc")
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            url = served.base + "/console/apps/lib/keywords"
            status, where, _ = await _post(session, url, token, keyword="  Books  ", mode="1", auto_subscribe="yes",
                                           auto_subscribe_tags="news,events")
            assert status == 200 and "done=keyword-added" in where
            row = await pool.fetchrow("SELECT keyword, mode, auto_subscribe, auto_subscribe_tags FROM engine_keyword")
            assert tuple(row) == ("Books", 1, True, ["news", "events"])
            for keyword, message in (("STOP", "reserved"), ("bad!", "invalid")):
                status, _, html = await _post(session, url, token, keyword=keyword)
                assert status == 400 and message in html
            status, _, html = await _post(session, served.base + "/console/apps/crm/keywords", token,
                                          keyword="BOOKS CLUB")
            assert status == 400 and "would never be reached" in html  # lib's starts-with BOOKS takes it
            status, where, _ = await _post(session, url + "/remove", token, keyword="books")
            assert "done=keyword-removed" in where
            assert await pool.fetchval("SELECT count(*) FROM engine_keyword") == 0


async def test_a_dead_letter_is_retried_from_the_app_page(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    app_id = (await admin.create_app(pool, "lib")).app_id
    async with pool.acquire() as conn:
        (event_id,) = await enqueue_events(conn, [NewEvent(app_id, PHONE_BLACKLISTED, phone_event("+13472643707"))])
    await pool.execute("UPDATE engine_outbox SET state = 'dead', last_error = 'no gateway_url'")
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            async with session.get(served.base + "/console/apps/lib") as page:
                assert event_id in await page.text()
            _, where, _ = await _post(session, served.base + "/console/apps/lib/dead-letters/retry", token,
                                      event_id=event_id)
            assert "done=retried" in where
            assert await pool.fetchval("SELECT state FROM engine_outbox") == "pending"
            _, where, _ = await _post(session, served.base + "/console/apps/lib/dead-letters/retry", token,
                                      event_id=event_id)
            assert "done=not-dead" in where
            status, _, html = await _post(session, served.base + "/console/apps/lib/dead-letters/retry", token,
                                          event_id="x")
            assert status == 400 and "event_id" in html


async def test_the_segment_counter(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            async def count(text: str, *, smart: str = "no", app: str = "lib") -> str:
                _, _, html = await _post(session, served.base + f"/console/segments?field=help_text&app={app}",
                                         token, help_text=text, smart_encoding=smart)
                return html

            assert "160 characters · GSM-7 · <strong>1 segment</strong>" in await count("x" * 160)
            assert "161 characters · GSM-7 · <strong>2 segments</strong> (153 + 8 units)" in await count("x" * 161)
            assert "UCS-2" in await count("“Hi”")
            smart = await count("“Hi”", smart="yes")
            assert "GSM-7" in smart and "smart encoding: “ → &#34;" in smart
            # {app} goes out as the app's name, and is counted so.
            assert "157 characters" in await count("{app}" + "x" * 152, app="abcde")
            async with session.post(served.base + "/console/segments?field=password", data={"csrf_token": token},
                                    ) as resp:
                assert resp.status == 400


async def test_bad_input_and_unknown_names_are_refused_by_name(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await admin.create_app(pool, "lib")
    await admin.add_provider(pool, "lib", kind="fake", account_sid="AC" + "0" * 32, auth_token="t" * 32,
                             base_url="http://127.0.0.1:9")  # nothing listens there
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        async with session:
            for path in ("/console/apps/nope", "/console/carrier/nope"):
                async with session.get(served.base + path) as resp:
                    assert resp.status == 404, path
            async with session.get(served.base + "/console/inbound/phone?phone=12") as resp:
                assert resp.status == 400 and "not a valid phone number" in await resp.text()
            for fields, message in (({"action": "add", "phone": "+13472643707", "app": "lib", "note": ""}, "reason"),
                                    ({"action": "add", "phone": "+13472643707", "app": "nope", "note": "x"}, "nope"),
                                    ({"action": "drop", "phone": "+13472643707", "app": "lib", "note": "x"},
                                     "action")):
                status, _, html = await _post(session, served.base + "/console/inbound/blacklist", token, **fields)
                assert status == 400 and message in html, fields
            assert await pool.fetchval("SELECT count(*) FROM engine_blacklist") == 0
            status, _, html = await _post(session, served.base + "/console/carrier/lib-smsc/search", token,
                                          contains="646;DROP")
            assert status == 200 and "contains: use up to 16 digits" in html
            status, _, html = await _post(session, served.base + "/console/carrier/lib-smsc/test", token)
            assert "network error" in html  # the carrier's account cannot be reached: said, not a crash
            status, _, html = await _post(session, served.base + "/console/carrier/lib-smsc/buy", token,
                                          number="+12125550123")
            assert status == 400 and "carrier unreachable" in html
            assert await pool.fetchval("SELECT count(*) FROM engine_did") == 0
