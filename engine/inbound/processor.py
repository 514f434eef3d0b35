"""Workers handle stored MOs: the oldest open one of each phone, each in one transaction with its effects.

LISTEN wakes the processor when the webhook stores an MO (a poll covers a lost NOTIFY); a worker that dies
mid-chain leaves its MOs claimed until their lease ends, then they run again (nothing was committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from engine.inbound.chain import AppTexts, MoContext, Plan, plan_mo
from engine.inbound.keywords import classify
from engine.store import inbound as store
from engine.store.inbound import Mo, MoEffects, MoFacts, ReplyRow

__all__ = ["MoProcessor", "context_of", "effects_of"]

log = logging.getLogger(__name__)

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def context_of(mo: Mo, facts: MoFacts) -> MoContext:
    """The chain's view of the database facts (pure)."""
    sessions = [(a.session_opened, a.id) for a in facts.apps if a.session_opened is not None]
    return MoContext(
        phone=mo.phone,
        apps={a.id: AppTexts(a.id, a.name, a.help_text, a.welcome_text, a.optout_text, a.optin_text, a.nomatch_text)
              for a in facts.apps},
        session_app=max(sessions)[1] if sessions else None,
        conversed=frozenset(a.id for a in facts.apps if a.texted or a.contact),
        blacklisted=frozenset(a.id for a in facts.apps if a.blacklisted),
        contacts=frozenset(a.id for a in facts.apps if a.contact),
        carrier_handles_optout=facts.carrier_handles_optout,
    )


def effects_of(mo: Mo, plan: Plan) -> MoEffects:
    """What to write for a plan (pure)."""
    incoming = None
    if plan.deliver:
        incoming = {
            "phone_number": mo.phone,
            "body": mo.body,
            "sent_at": mo.received_at.isoformat(),
            "auto_subscribe": "false",
            "auto_responded": "true" if plan.replies else "false",
        }
        if plan.possible_opt_out:
            incoming["possible_opt_out"] = "true"
    return MoEffects(
        app_id=plan.app_id,
        outcome=plan.outcome,
        keyword=plan.keyword,
        opt_out=plan.opt_out,
        opt_in=plan.opt_in,
        replies=tuple(ReplyRow(r.app_id, r.body, "compliance" if r.compliance else "reply") for r in plan.replies),
        incoming=incoming,
        new_contact=plan.app_id is not None and plan.outcome == "routed",
    )


class MoProcessor:
    """Claims stored MOs in per-phone order and runs the module chain on each."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, worker_id: str, *, lease_seconds: float = 30.0,
        poll_seconds: float = 1.0, batch: int = 100,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.wake = asyncio.Event()
        self.handled = 0

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                try:
                    await store.recover_mos(self.pool)
                    done = await self.run_once()
                except DB_ERRORS as exc:
                    log.warning("MO processing paused (%s); retrying", type(exc).__name__)
                    done = 0
                if done < self.batch:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def run_once(self) -> int:
        """Handle one batch of MOs; returns how many were claimed."""
        mos = await store.claim_mos(self.pool, self.worker_id, self.batch, self.lease_seconds)
        for mo in mos:
            try:
                await self.handle(mo)
            except DB_ERRORS:
                log.exception("MO %s not handled; it runs again when its lease ends", mo.id)
        return len(mos)

    async def handle(self, mo: Mo) -> Plan:
        async with store.mo_transaction(self.pool) as tx:
            facts = await tx.facts(mo)
            context = context_of(mo, facts)
            plan = plan_mo(classify(mo.body), context)
            await tx.apply(mo, facts.did_id, effects_of(mo, plan))
        self.handled += 1
        return plan

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN engine_inbound; reconnect when the connection drops."""
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener("engine_inbound", lambda *_: self.wake.set())
                self.wake.set()
                while not conn.is_closed() and not stop.is_set():
                    await asyncio.sleep(0.5)
            except DB_ERRORS as exc:
                log.warning("LISTEN engine_inbound lost (%s)", type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not stop.is_set():
                await asyncio.sleep(1.0)
