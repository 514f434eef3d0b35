"""The module chain against a real database, on an injected clock: keywords, sessions, double opt-in, STOP ALL on a
shared SMSC, auto-reply loops. MOs are stored as the webhook stores them and handled by the real processor."""

from __future__ import annotations

import itertools

import asyncpg

from engine.inbound.processor import MoProcessor
from engine.store import admin
from engine.store import inbound as store

DID = "+16462000001"
PHONE = "+13472643707"
DAY = 24 * 3600.0
_sids = itertools.count(1)


class Phone:
    """Texts the engine through the MO store and the processor, on a clock the test moves."""

    def __init__(self, pool: asyncpg.Pool, provider_id: int) -> None:
        self.pool = pool
        self.provider_id = provider_id
        self.now = 1_800_000_000.0
        self.processor = MoProcessor(pool, "", "w-test", clock=lambda: self.now)

    async def text(self, body: str, phone: str = PHONE) -> str:
        params = {"MessageSid": f"SM{next(_sids):032x}", "From": phone, "To": DID, "Body": body}
        assert await store.store_mo(self.pool, self.provider_id, params, None) is not None
        (mo,) = await store.claim_mos(self.pool, "w-test", 10, 30.0)
        plan = await self.processor.handle(mo)
        return plan.outcome

    async def routed_to(self) -> str | None:
        return await self.pool.fetchval(  # type: ignore[no-any-return]
            "SELECT a.name FROM engine_inbound i JOIN engine_app a ON a.id = i.app_id ORDER BY i.id DESC LIMIT 1")

    async def replies(self) -> list[str]:
        rows = await self.pool.fetch("SELECT body FROM engine_outbound WHERE recipient = $1 ORDER BY id", PHONE)
        return [r["body"] for r in rows]


async def _shared_smsc(pool: asyncpg.Pool) -> tuple[Phone, dict[str, int]]:
    """Two apps on one SMSC (the library's), one DID."""
    lib = await admin.create_app(pool, "lib")
    crm = await admin.create_app(pool, "crm")
    provider_id = await admin.add_provider(pool, "lib", kind="fake", account_sid="AC" + "0" * 32, auth_token="t")
    await admin.add_dids(pool, "lib", [DID])
    await pool.execute("UPDATE engine_app SET smsc_id = (SELECT smsc_id FROM engine_app WHERE name = 'lib') "
                       "WHERE name = 'crm'")
    return Phone(pool, provider_id), {"lib": lib.app_id, "crm": crm.app_id}


async def _keyword(pool: asyncpg.Pool, app_id: int, keyword: str, mode: int = 0, **extra: object) -> None:
    columns = ", ".join(["smsc_id", "app_id", "keyword", "mode", *extra])
    values = ", ".join(f"${i}" for i in range(1, 5 + len(extra)))
    smsc = await pool.fetchval("SELECT smsc_id FROM engine_app WHERE id = $1", app_id)
    await pool.execute(f"INSERT INTO engine_keyword ({columns}) VALUES ({values})",
                       smsc, app_id, keyword, mode, *extra.values())


async def test_keywords_exact_wins_then_the_longest_starts_with(pool: asyncpg.Pool) -> None:
    phone, apps = await _shared_smsc(pool)
    await _keyword(pool, apps["lib"], "BOOKS", 1, start_session=False)
    await _keyword(pool, apps["crm"], "BOOKS CLUB", 1, start_session=False)
    await _keyword(pool, apps["crm"], "BOOKS NOW", 0, start_session=False)
    assert await phone.text("books club tonight?") == "routed" and await phone.routed_to() == "crm"
    assert await phone.text("Books now") == "routed" and await phone.routed_to() == "crm"  # exact
    assert await phone.text("books now please") == "routed" and await phone.routed_to() == "lib"  # starts-with
    assert await phone.text("bookshelf") == "no_match"  # a keyword is a whole word


async def test_a_session_routes_without_a_keyword_until_it_expires(pool: asyncpg.Pool) -> None:
    phone, apps = await _shared_smsc(pool)
    await _keyword(pool, apps["crm"], "DEALS")
    await pool.execute("UPDATE engine_app SET session_idle_seconds = 3600")
    assert await phone.text("deals") == "routed" and await phone.routed_to() == "crm"
    phone.now += 3000
    assert await phone.text("what's new?") == "routed" and await phone.routed_to() == "crm"
    phone.now += 3500  # 3,500 s after the last MO: still within the idle time it renewed
    assert await phone.text("and today?") == "routed"
    phone.now += 3601
    assert await phone.text("anyone there?") == "no_match"
    heard = [r["app_id"] for r in await pool.fetch(
        "SELECT app_id FROM engine_outbox WHERE type = 'incoming_message' ORDER BY id")]
    assert heard == [apps["crm"]] * 3  # the no-match MO reached no app


async def test_double_opt_in_subscribes_only_after_yes_within_a_day(pool: asyncpg.Pool) -> None:
    phone, apps = await _shared_smsc(pool)
    await _keyword(pool, apps["lib"], "EVENTS", 0, auto_subscribe=True, auto_subscribe_tags=["events", "kids"],
                   double_opt_in=True)
    await phone.text("EVENTS")
    assert await pool.fetchval("SELECT count(*) FROM engine_subscription") == 0
    assert "Reply YES" in (await phone.replies())[-1]
    assert await phone.text("yes") == "confirmed"
    tags = {r["tag"] for r in await pool.fetch("SELECT tag FROM engine_subscription WHERE phone = $1", PHONE)}
    assert tags == {"events", "kids"}
    # Without a pending confirmation (or after it expired) YES is an ordinary message.
    other = "+13472643708"
    await phone.text("EVENTS", phone=other)
    phone.now += DAY + 1
    assert await phone.text("YES", phone=other) != "confirmed"
    assert await pool.fetchval("SELECT count(*) FROM engine_subscription WHERE phone = $1", other) == 0


async def test_auto_subscribe_without_confirmation(pool: asyncpg.Pool) -> None:
    phone, apps = await _shared_smsc(pool)
    await _keyword(pool, apps["crm"], "VIP", 0, auto_subscribe=True, auto_subscribe_tags=["vip"],
                   auto_response="Welcome to VIP")
    await phone.text("vip")
    assert await pool.fetchval("SELECT tag FROM engine_subscription") == "vip"
    assert await phone.replies() == ["Welcome to VIP"]
    payload = await pool.fetchval("SELECT payload FROM engine_outbox WHERE type = 'incoming_message'")
    assert '"auto_subscribe": "true"' in payload and '"auto_responded": "true"' in payload


async def test_stop_all_opts_out_of_every_app_on_the_smsc_with_one_confirmation(pool: asyncpg.Pool) -> None:
    phone, apps = await _shared_smsc(pool)
    await _keyword(pool, apps["crm"], "DEALS")
    await phone.text("DEALS")  # a session with crm
    assert await phone.text("STOP") == "opt_out"
    assert {r["app_id"] for r in await pool.fetch("SELECT app_id FROM engine_blacklist")} == {apps["crm"]}
    assert await pool.fetchval("SELECT count(*) FROM engine_session") == 0  # opt-out closes the session
    assert await phone.text("STOP ALL") == "opt_out"
    assert {r["app_id"] for r in await pool.fetch("SELECT app_id FROM engine_blacklist")} == set(apps.values())
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM engine_outbound ORDER BY id")]
    assert kinds == ["compliance", "compliance"]  # one confirmation per STOP
    assert await pool.fetchval("SELECT count(*) FROM engine_consent_event") == 3


async def test_a_phone_that_texts_back_automatically_is_cut_off_and_reported_once(pool: asyncpg.Pool) -> None:
    phone, _apps = await _shared_smsc(pool)
    await pool.execute("UPDATE engine_app SET welcome_text = NULL, nomatch_text = 'Sorry?'")
    await pool.execute("UPDATE engine_app SET loop_max_replies = 3, loop_window_seconds = 60")
    for _ in range(8):  # an auto-responder answering every no-match text with another text
        await phone.text(f"Out of office {phone.now}")
        phone.now += 1
    assert len(await phone.replies()) == 3
    assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE type = 'auto_reply_loop'") == 1
    assert await phone.text("HELP") == "help"  # the first HELP of the cool-down is still answered
    assert len(await phone.replies()) == 4
    phone.now += 3600
    await phone.text("hello again")
    assert len(await phone.replies()) == 5  # after the cool-down, replies resume
