"""The operator console in a real browser: Debian's chromium, headless, driven by Playwright, against the real engine
(webhooks, API, worker, console) on loopback with the fake carrier.

Scenarios: log in and open every page; a wrong password, a missing CSRF token and anonymous requests are refused;
change a module text (the live segment counter, then stored); test the carrier connection (and a refused one);
blacklist a phone by hand and remove it again; rotate an API key (the old one stops working at once); buy and
release a number. Every page is photographed into $ENGINE_ARTIFACTS_DIR/console (default: the system's temporary
directory, never the repository), and no page may log a script error or a Content-Security-Policy violation.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright, expect

from engine.store import admin
from engine.submit import Outgoing, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, FakeCarrier
from tests.helpers.console import OPERATOR, PASSWORD, add_operator
from tests.helpers.database import fetch_until, wait_final
from tests.helpers.engine import FakeApp, add_fake_app, carrier, did_numbers, engine_running, provider_of, send_mo

pytestmark = [pytest.mark.browser, pytest.mark.system]

CHROMIUM: Final = Path("/usr/bin/chromium")
ARGS: Final = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS: Final = Path(os.environ.get("ENGINE_ARTIFACTS_DIR") or Path(tempfile.gettempdir()) / "engine-artifacts")
SHOTS: Final = ARTIFACTS / "console"
PHONE: Final = "+13472643707"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Site:
    """The engine running with the console, an app on the fake carrier, and what the browser said went wrong."""

    base: str
    pool: asyncpg.Pool
    app: FakeApp
    fake: FakeCarrier
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
async def site(pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Site]:
    async with carrier() as fake:
        app = await add_fake_app(pool, fake.base_url or "", numbers=did_numbers(4), limit_per_min=600)
        await add_operator(pool)
        async with engine_running(db_dsn) as running:
            yield Site(running.base_url, pool, app, fake)


async def new_page(browser: Browser, site: Site) -> Page:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or (message.type == "error" and "Failed to load resource" not in text):
            site.problems.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: site.problems.append(f"page error: {error}"))
    return page


async def shot(page: Page, name: str) -> None:
    await page.evaluate("() => window.scrollTo(0, 0)")  # (a full-page capture draws the sticky header where it is)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def log_in(page: Page, site: Site, *, password: str = PASSWORD, path: str = "/console/") -> None:
    await page.goto(site.url(path))
    assert "/console/login" in page.url
    await page.fill("input[name=name]", OPERATOR)
    await page.fill("input[name=password]", password)
    await page.click("button:has-text('Log in')")
    await page.wait_for_load_state()


async def test_log_in_and_open_every_page(browser: Browser, site: Site) -> None:
    # Something to show: messages sent through the carrier, a phone that texted (a question, then STOP).
    await submit_many(site.pool, site.app.name, [Outgoing(f"+1347264{3700 + i:04d}", f"Storytime {i} is at 10")
                                                for i in range(12)])
    provider = await provider_of(site.pool)
    assert await send_mo(site.base, provider, PHONE, site.app.numbers[0], "When does the library open?") == 200
    assert await send_mo(site.base, provider, PHONE, site.app.numbers[0], "STOP") == 200
    await fetch_until(site.pool, "SELECT count(*) = 2 FROM engine_inbound WHERE state = 'done'")
    await wait_final(site.pool, 13)

    page = await new_page(browser, site)
    await log_in(page, site, path="/console/apps")
    assert page.url.endswith("/console/apps")  # back where the login interrupted
    await shot(page, "apps")

    await page.goto(site.url("/console/"))
    await page.wait_for_selector("#sends-chart[data-loaded=yes] canvas")
    assert await page.get_attribute("#sends-chart", "data-total") == "13"  # 12 + the STOP confirmation
    assert await page.inner_text("#sent-hour") == "13"
    assert await page.inner_text("#delivery-rate") == "100.0 %"
    assert site.app.name in await page.inner_text("#per-app")
    await shot(page, "overview")
    # The live part refreshes itself (htmx polling): a message queued now shows up without a reload.
    await submit_many(site.pool, site.app.name, [Outgoing("+13472640001", "later", on=None)])
    await wait_final(site.pool, 14)
    await expect(page.locator("#sent-hour")).to_have_text("14", timeout=15000)

    await page.click("nav >> text=Messages")
    await page.wait_for_selector("#messages")
    assert len(await page.locator("#messages tr[data-message]").all()) == 14  # 12 + the STOP answer + the later
    await page.click("#messages tr[data-message] >> nth=0 >> a >> nth=0")
    await page.wait_for_selector("text=Timeline")
    await page.click("nav >> text=Jobs")
    await page.wait_for_selector("#new-job")

    await page.click("nav >> text=Inbound")
    await page.wait_for_selector("#conversations")
    assert PHONE in await page.inner_text("#conversations")
    await shot(page, "inbound")
    await page.click(f"#conversations >> text={PHONE}")
    await page.wait_for_selector("#thread")
    thread = await page.inner_text("#thread")
    assert "When does the library open?" in thread and "STOP" in thread and "unsubscribed" in thread
    assert site.app.name in await page.inner_text("#blacklisted-for")
    await shot(page, "conversation")
    await page.click("nav.tabs >> text=Opt-out / opt-in record")
    await page.wait_for_selector("table.consent")
    assert "opt-out" in await page.inner_text("table.consent")
    await shot(page, "consent")
    await page.click("nav.tabs >> text=Blacklist")
    await page.wait_for_selector("#blacklist")
    assert PHONE in await page.inner_text("#blacklist")
    await shot(page, "blacklist")

    await page.click("nav >> text=Apps")
    await page.click(f"#apps >> text={site.app.name}")
    await page.wait_for_selector("#settings")
    await shot(page, "app")

    await page.click("nav >> text=Carrier & numbers")
    await page.wait_for_selector("section.smsc")
    text = await page.inner_text("section.smsc")
    assert DEFAULT_ACCOUNT_SID in text and "••••••••" in text
    token = (await provider_of(site.pool))[1]
    assert token not in await page.content()  # never the token in full
    await shot(page, "carrier")
    await page.click("section.smsc >> text=Numbers →")
    await page.wait_for_selector("#dids")
    assert site.app.numbers[0] in await page.inner_text("#dids")
    await shot(page, "carrier-numbers")

    await page.click("button:has-text('Log out')")
    await page.wait_for_url("**/console/login")
    await page.goto(site.url("/console/apps"))
    assert "/console/login" in page.url  # the session is gone
    assert site.problems == []


async def test_wrong_password_missing_csrf_and_anonymous_requests_are_refused(browser: Browser, site: Site) -> None:
    page = await new_page(browser, site)
    await log_in(page, site, password="not the password")
    assert "/console/login" in page.url
    assert "Wrong name or password" in await page.inner_text("p.error")
    await shot(page, "login-refused")

    # Anonymous: a page leads to the login, the JSON endpoint answers 401.
    anonymous = await browser.new_context()
    response = await anonymous.request.get(site.url("/console/api/overview.json"))
    assert response.status == 401
    anonymous_page = await anonymous.new_page()
    await anonymous_page.goto(site.url("/console/carrier"))
    assert "/console/login" in anonymous_page.url
    await anonymous.close()

    # Logged in, a form whose CSRF token was taken out is refused, and changes nothing.
    await log_in(page, site, path=f"/console/apps/{site.app.name}")
    key_before = await site.pool.fetchval("SELECT api_key_hash FROM engine_app")
    await page.locator("#api-key input[name=csrf_token]").evaluate("field => field.remove()")
    await page.click("#rotate-key")
    await page.wait_for_load_state()
    assert "CSRF token is missing or wrong" in await page.inner_text("p.error")
    await shot(page, "csrf-refused")
    assert await site.pool.fetchval("SELECT api_key_hash FROM engine_app") == key_before
    assert site.problems == []


async def test_change_a_module_text_with_its_live_segment_counter(browser: Browser, site: Site) -> None:
    page = await new_page(browser, site)
    await log_in(page, site, path=f"/console/apps/{site.app.name}")
    counter = "#help_text-segments"
    await page.fill("#help_text", "Library alerts: reply STOP to stop.")
    await expect(page.locator(counter)).to_contain_text("35 characters")
    assert "GSM-7" in await page.inner_text(counter) and "1 segment" in await page.inner_text(counter)
    text = "Library alerts 📚 reply STOP to stop, HELP for help. Storytime is every Saturday at 10 at Main Library."
    await page.fill("#help_text", text)
    await expect(page.locator(counter)).to_contain_text("UCS-2")
    assert "2 segments" in await page.inner_text(counter)  # over 70 UTF-16 units: two parts of 67
    await shot(page, "app-counter")
    await page.click("button:has-text('Save settings')")
    await page.wait_for_selector("p.notice")
    assert "Settings saved." in await page.inner_text("p.notice")
    assert await site.pool.fetchval("SELECT help_text FROM engine_app") == text
    assert await page.input_value("#help_text") == text

    # A bad value is refused by the same rules as `engine app set`, naming the setting; nothing is written.
    await page.fill("input[name=flood_limit]", "10 per hour")
    await page.fill("#welcome_text", "Welcome!")
    await page.click("button:has-text('Save settings')")
    await page.wait_for_selector("p.error")
    assert "--flood-limit" in await page.inner_text("p.error")
    assert await site.pool.fetchval("SELECT welcome_text FROM engine_app") is None
    await shot(page, "app-refused")
    assert site.problems == []


async def test_carrier_connection_test(browser: Browser, site: Site) -> None:
    page = await new_page(browser, site)
    await log_in(page, site, path="/console/carrier")
    await page.click("button:has-text('Test connection')")
    await page.wait_for_selector(".test-result p")
    assert "Connected" in await page.inner_text(".test-result")
    assert f"/webhooks/twilio/inbound/{site.app.provider_id}" in await page.inner_text(".test-result")
    await shot(page, "carrier-test-ok")

    # The same account with a token the carrier does not accept: the carrier's own error is shown.
    await admin.add_provider(site.pool, site.app.name, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                             auth_token="not-the-token", base_url=site.fake.base_url)
    await page.reload()
    await page.click("button:has-text('Test connection')")
    await page.wait_for_selector(".test-result p.error")
    assert "20003" in await page.inner_text(".test-result")
    await shot(page, "carrier-test-refused")
    assert site.problems == []


async def test_blacklist_a_phone_and_remove_it(browser: Browser, site: Site) -> None:
    page = await new_page(browser, site)
    await log_in(page, site, path="/console/inbound/blacklist")
    await page.fill("#consent-change input[name=phone]", "(347) 264-3707")
    await page.select_option("#consent-change select[name=app]", site.app.name)
    await page.fill("#consent-change input[name=note]", "asked by phone to stop")
    await page.click("#consent-change button:has-text('Blacklist')")
    await page.wait_for_selector("p.notice")
    assert "is blacklisted" in await page.inner_text("p.notice")
    row = await page.inner_text("#blacklist")
    assert PHONE in row and "asked by phone to stop" in row and "operator" in row
    await shot(page, "blacklist-added")
    event = await site.pool.fetchrow("SELECT action, source, operator, note FROM engine_consent_event")
    assert dict(event) == {"action": "opt_out", "source": "operator", "operator": OPERATOR,
                           "note": "asked by phone to stop"}
    assert await site.pool.fetchval("SELECT count(*) FROM engine_outbox WHERE type = 'phone_blacklisted'") == 1

    await page.fill("#consent-change input[name=phone]", PHONE)
    await page.fill("#consent-change input[name=note]", "called back: wants the texts again")
    await page.click("#consent-change button:has-text('Remove from blacklist')")
    await page.wait_for_selector("p.notice")
    assert "no longer blacklisted" in await page.inner_text("p.notice")
    assert await page.locator("#blacklist tbody a", has_text=PHONE).count() == 0
    assert "No blacklisted phone starts with" in await page.inner_text("#blacklist")
    assert await site.pool.fetchval("SELECT count(*) FROM engine_blacklist") == 0
    actions = [tuple(r) for r in await site.pool.fetch(
        "SELECT action, operator, note FROM engine_consent_event ORDER BY id")]
    assert actions[-1] == ("opt_in", OPERATOR, "called back: wants the texts again")

    # A reason is required; a bad phone is named.
    await page.fill("#consent-change input[name=phone]", "12")
    await page.fill("#consent-change input[name=note]", "x")
    await page.click("#consent-change button:has-text('Blacklist')")
    await page.wait_for_selector("p.error")
    assert "not a valid phone number" in await page.inner_text("p.error")
    assert site.problems == []


async def test_rotate_an_api_key_and_the_old_one_stops_working_at_once(browser: Browser, site: Site) -> None:
    async def dids(key: str) -> int:
        async with aiohttp.ClientSession() as session, session.get(site.url("/api/dids"),
                                                                   params={"api_key": key}) as resp:
            return resp.status

    old = site.app.api_key
    assert await dids(old) == 200  # and now cached by the API
    page = await new_page(browser, site)
    await log_in(page, site, path=f"/console/apps/{site.app.name}")
    await page.click("#rotate-key")
    await page.wait_for_selector("#new-api-key")
    new = (await page.inner_text("#new-api-key")).strip()
    await shot(page, "api-key-rotated")
    assert new and new != old
    assert await dids(old) == 401
    assert await dids(new) == 200
    await page.reload()  # the key is shown once: not after a reload
    assert await page.locator("#new-api-key").count() == 0
    assert site.problems == []


async def test_buy_and_release_a_number(browser: Browser, site: Site) -> None:
    page = await new_page(browser, site)
    page.on("dialog", lambda dialog: asyncio.ensure_future(_accept(dialog)))
    await log_in(page, site, path="/console/carrier/lib-smsc")
    await page.fill("#buy input[name=contains]", "212")
    await page.click("#buy button:has-text('Search')")
    await page.wait_for_selector("#search-results ul.found li")
    first = (await page.inner_text("#search-results ul.found li code")).strip()
    await shot(page, "numbers-search")
    await page.click("#search-results ul.found li >> nth=0 >> button:has-text('Buy')")
    await page.wait_for_selector("p.notice")
    assert "Number bought" in await page.inner_text("p.notice")
    assert first in await page.inner_text("#dids")
    sms_url = site.fake.sms_url(first)
    assert sms_url is not None and sms_url.endswith(f"/webhooks/twilio/inbound/{site.app.provider_id}")

    row = page.locator("#dids tr", has_text=first)
    await row.locator("button:has-text('Release')").click()
    await page.wait_for_url("**done=released**")
    assert first not in await page.inner_text("#dids")
    assert await site.pool.fetchval("SELECT count(*) FROM engine_did WHERE number = $1", first) == 0
    assert site.fake.sms_url(first) is None  # released on the carrier too
    await shot(page, "numbers-released")
    assert site.problems == []


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()
