"""The Messages pages in a real browser (chromium via Playwright, the real engine and worker, the fake carrier with
its status callbacks): find a message by the phone as a person types it, open it and read its status timeline,
try a resend to a number that is not one (refused, nothing queued), resend it to the corrected number and watch the
new message reach `delivered` on its page. Screenshots go where test_console_browser puts them."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from engine.submit import Outgoing, submit_many
from tests.helpers.database import wait_final
from tests.test_console_browser import Site, log_in, new_page, shot
from tests.test_console_browser import browser as browser  # the fixtures, shared
from tests.test_console_browser import site as site

pytestmark = [pytest.mark.browser, pytest.mark.system]

WRONG = "+13472643707"  # the number the library had on file
RIGHT = "+12125550199"  # the reader's real number


async def _count(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM engine_outbound")
    return n


async def test_find_a_message_and_resend_it_to_a_corrected_number(browser: Browser, site: Site) -> None:
    others = [Outgoing(f"+1347264{3710 + i:04d}", f"Storytime {i} is at 10", type="reminder") for i in range(8)]
    (mid, *_) = await submit_many(site.pool, site.app.name, [
        Outgoing(WRONG, "Your hold “Dune” is ready at Main Library until Friday", type="hold", tag="holds"),
        *others])
    await wait_final(site.pool, 1 + len(others))

    page = await new_page(browser, site)
    await log_in(page, site, path="/console/messages")
    assert page.url.endswith("/console/messages")
    assert await page.locator("#messages tbody tr").count() == 1 + len(others)
    await shot(page, "messages-all")
    # A filter that cannot be read is said by name, and the list waits for it to be corrected.
    await page.fill("#filters input[name=since]", "the day after never")
    await page.click("#filters button:has-text('Filter')")
    await page.wait_for_selector("p.error")
    assert (await page.inner_text("p.error")).startswith("since: ")
    assert await page.locator("#messages tbody tr[data-message]").count() == 0
    await shot(page, "messages-bad-filter")
    await page.fill("#filters input[name=since]", "")
    await page.fill("#filters input[name=phone]", "(347) 264-3707")
    await page.click("#filters button:has-text('Filter')")
    await page.wait_for_url("**/console/messages?*phone=*")
    rows = page.locator("#messages tbody tr")
    await expect(rows).to_have_count(1)
    row = await rows.inner_text()
    assert WRONG in row and "1 delivered" in row and "hold" in row and any(n in row for n in site.app.numbers)
    await shot(page, "messages")

    await page.click(f"#messages a:has-text('#{mid}')")
    await page.wait_for_selector("#timeline")
    assert await page.inner_text("#message-state") == "delivered"
    assert "Your hold “Dune” is ready" in await page.inner_text("#message-body")
    events = await page.locator("#timeline tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events[:2] == ["created", "engine"] and events[-1] == "carrier"
    assert "delivered" in await page.locator("#timeline tbody tr").last.inner_text()
    await shot(page, "message")

    # A number that is not one: said by name, nothing queued.
    before = await _count(site.pool)
    await page.fill("#resend-form input[name=phone]", "347 264")
    await page.click("#resend-form button:has-text('Resend')")
    await page.wait_for_selector("p.error")
    assert "phone: '347 264' is not a valid phone number" in await page.inner_text("p.error")
    assert await _count(site.pool) == before

    await page.fill("#resend-form input[name=phone]", "(212) 555-0199")
    await page.click("#resend-form button:has-text('Resend')")
    await page.wait_for_url("**done=resent")
    new = int(page.url.split("/console/message/")[1].split("?")[0])
    assert new != mid and "Resent: this is the new message" in await page.inner_text("p.notice")
    assert await page.inner_text("#resent-from") == f"#{mid}"
    # The page follows the new message until it is final: the carrier's callbacks bring it to delivered.
    await expect(page.locator("#message-state")).to_have_text("delivered", timeout=30000)
    fields = await page.inner_text("#message-fields")
    assert RIGHT in fields and any(n in fields for n in site.app.numbers)
    assert "delivered" in await page.locator("#timeline tbody tr").last.inner_text()
    await shot(page, "message-resent")
    row = await site.pool.fetchrow("SELECT recipient, body, type, tag, resent_from, state FROM engine_outbound "
                                   "WHERE id = $1", new)
    assert dict(row) == {"recipient": RIGHT, "body": "Your hold “Dune” is ready at Main Library until Friday",
                         "type": "hold", "tag": "holds", "resent_from": mid, "state": "delivered"}
    assert [r.to for r in site.fake.records].count(RIGHT) == 1

    # Back on the original: its resend is linked.
    await page.click("#resent-from")
    await page.wait_for_selector("#message-links")
    assert f"#{new}" in await page.inner_text("#message-links")
    assert site.problems == []
