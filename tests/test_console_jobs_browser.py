"""The Jobs page in a real browser (chromium via Playwright, the real engine and worker, the fake carrier):
upload a CSV with a template, read the preview (rendered messages, segments, invalid lines), confirm skipping the
invalid lines, pause the job while it runs (nothing more is handed to the carrier), resume it and watch it finish
with every message delivered. Screenshots go where test_console_browser puts them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from tests.helpers.console import add_operator
from tests.helpers.database import fetch_until
from tests.helpers.engine import add_fake_app, carrier, did_numbers, engine_running
from tests.test_console_browser import SHOTS, Site, log_in, new_page, shot
from tests.test_console_browser import browser as browser  # the fixtures, shared

pytestmark = [pytest.mark.browser, pytest.mark.system]

ROWS = 240  # at 4 DIDs × 10/s: six seconds of sending, long enough to pause it midway


@pytest.fixture
async def site(pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Site]:
    """test_console_browser's site, with a worker that claims small batches (it keeps at most 20 of them in
    memory, and a pause does not recall what a worker claimed: with the default batches it holds the whole job)."""
    async with carrier() as fake:
        app = await add_fake_app(pool, fake.base_url or "", numbers=did_numbers(4), limit_per_min=600)
        await add_operator(pool)
        async with engine_running(db_dsn, batch_size=2) as running:
            yield Site(running.base_url, pool, app, fake)


async def test_start_a_job_from_a_csv_pause_resume_and_watch_it_finish(browser: Browser, site: Site,
                                                                        tmp_path: object) -> None:
    lines = ["phone;name"] + [f"+1347265{i:04d};Reader {i}" for i in range(ROWS)]
    lines[5] = "12;Nobody"  # line 6: not a phone number
    lines.insert(9, "+13472659999;")  # line 10: no name
    csv = SHOTS / "readers.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")

    page = await new_page(browser, site)
    await log_in(page, site, path="/console/jobs")
    await page.select_option("select[name=app]", site.app.name)
    await page.set_input_files("input[name=csv]", str(csv))
    await page.fill("textarea[name=template]", "Hello {{name}}, the library has your book 📚")
    await shot(page, "jobs-new")
    await page.click("button:has-text('Check and preview')")
    await page.wait_for_selector("#preview")
    assert f"{ROWS - 1} of {ROWS + 1} lines can be sent" in await page.inner_text("#preview-summary")
    first = await page.inner_text("#preview tbody tr:first-child")
    assert "Hello Reader 0, the library has your book 📚" in first and first.rstrip().endswith("1")
    invalid = await page.inner_text("#invalid")
    assert "6\t12\t" in invalid and "10\t+13472659999\tno value for {{name}}" in invalid
    await shot(page, "jobs-preview")
    assert await site.pool.fetchval("SELECT count(*) FROM engine_job") == 0

    await page.check("input[name=skip_invalid]")
    await page.click("#confirm button")
    await page.wait_for_selector("#job-state")
    job_id = int(page.url.split("/console/jobs/")[1].split("?")[0])
    await page.click("button:has-text('Pause')")
    await expect(page.locator("#job-state")).to_have_text("paused")
    # Paused: what a worker had already claimed may finish, then nothing more goes to the carrier.
    await fetch_until(site.pool, "SELECT count(*) = 0 FROM engine_outbound WHERE job_id = $1 "
                      "AND state IN ('claimed', 'sending')", job_id)
    # The rest wait (due never), and the carrier got exactly what the engine handed over so far.
    waiting = await site.pool.fetchval("SELECT count(*) FILTER (WHERE due_at = 'infinity') - count(*) "
                                       "FROM engine_outbound WHERE job_id = $1 AND state = 'queued'", job_id)
    assert waiting == 0
    handed = await site.pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 "
                                      "AND state NOT IN ('queued', 'canceled')", job_id)
    assert site.fake.accepted == handed < ROWS - 1
    assert int((await page.inner_text("[data-count=queued]")).replace(",", "")) > 0
    await shot(page, "job-paused")

    await page.click("button:has-text('Resume')")
    await expect(page.locator("#job-state")).to_have_text("done", timeout=60000)
    await expect(page.locator("[data-count=delivered]")).to_have_text(f"{ROWS - 1:,}", timeout=30000)
    assert await page.locator("button:has-text('Pause')").count() == 0
    await shot(page, "job-done")
    await page.click("nav >> text=Jobs")
    await expect(page.locator(f"#jobs tr[data-job='{job_id}'] .pill")).to_have_text("done")
    await shot(page, "jobs")
    assert site.problems == []
