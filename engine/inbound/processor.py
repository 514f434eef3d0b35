"""Workers handle stored MOs: the oldest open one of each phone, each in one transaction with its effects.

LISTEN wakes the processor when the webhook stores an MO (a poll covers a lost NOTIFY); a worker that dies
mid-chain leaves its MOs claimed until their lease ends, then they run again (nothing was committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from engine.inbound.chain import AppTexts, MoContext, Plan, Reply, plan_mo
from engine.inbound.keywords import KeywordIndex, KeywordRule, classify
from engine.inbound.loops import LoopSettings, LoopState, ReplyKind, may_reply, on_mo
from engine.store import inbound as store
from engine.store import notify
from engine.store.database import DB_ERRORS, Pool
from engine.store.inbound import (
    AnswerEffects,
    AnswerFacts,
    AppFacts,
    LoopLimits,
    LoopRow,
    Mo,
    MoEffects,
    MoFacts,
    ReplyRow,
)

__all__ = ["MAX_REPROCESS_DEPTH", "MoProcessor", "answer_effects", "context_of", "effects_of", "guard_loops"]

log = logging.getLogger(__name__)



def context_of(mo: Mo, facts: MoFacts) -> MoContext:
    """The chain's view of the database facts (pure)."""
    sessions = [(a.session_opened, a.id) for a in facts.apps if a.session_opened is not None]
    rules = [KeywordRule(k.keyword, 1 if k.mode == 1 else 0, k.app_id, k.auto_subscribe, k.tags, k.double_opt_in,
                         k.start_session, k.auto_response) for k in facts.keywords]
    return MoContext(
        phone=mo.phone,
        apps={a.id: AppTexts(a.id, a.name, a.help_text, a.welcome_text, a.optout_text, a.optin_text, a.nomatch_text)
              for a in facts.apps},
        session_app=max(sessions)[1] if sessions else None,
        conversed=frozenset(a.id for a in facts.apps if a.texted or a.contact),
        blacklisted=frozenset(a.id for a in facts.apps if a.blacklisted),
        contacts=frozenset(a.id for a in facts.apps if a.contact),
        carrier_handles_optout=facts.carrier_handles_optout,
        keywords=KeywordIndex(rules) if rules else None,
        body=mo.body,
        pending={a.id: a.pending_tags for a in facts.apps if a.pending_tags is not None},
        last_tag={a.id: a.last_tag for a in facts.apps if a.last_tag is not None},
    )


MAX_REPROCESS_DEPTH: Final = 3  # a gateway's `reprocess` may lead to at most this many MOs in a chain


def _loop_settings(limits: LoopLimits) -> LoopSettings:
    return LoopSettings(limits.max_replies, float(limits.window_seconds), limits.max_repeats,
                        float(limits.cooldown_seconds))


def _state(row: LoopRow) -> LoopState:
    return LoopState(row.reply_times, row.last_body, row.last_mo_at, row.repeats, row.cooldown_until,
                     row.optout_sent, row.help_sent)


def _row(state: LoopState) -> LoopRow:
    return LoopRow(state.reply_times, state.last_body, state.last_mo_at, state.repeats, state.cooldown_until,
                   state.optout_sent, state.help_sent)


def answer_effects(facts: AnswerFacts, now: float) -> AnswerEffects:
    """What a gateway's answer does (pure): its reply (unless loop detection stops it), closing the session, and a
    reprocessed MO (at most MAX_REPROCESS_DEPTH deep)."""
    reply: str | None = None
    loop: LoopRow | None = None
    fire = False
    if facts.body is not None:
        decision = may_reply(_state(facts.loop), "auto", now, _loop_settings(facts.loop_limits))
        reply = facts.body if decision.allowed else None
        loop, fire = _row(decision.state), decision.fire_loop_event
    reprocess = facts.reprocess if facts.mo.depth < MAX_REPROCESS_DEPTH else None
    if facts.reprocess is not None and reprocess is None:
        log.warning("answer %s asks to reprocess beyond depth %d: ignored", facts.id, MAX_REPROCESS_DEPTH)
    return AnswerEffects(reply, facts.close_session, reprocess, loop, fire)


def _reply_kind(plan: Plan, reply: Reply) -> ReplyKind:
    if reply.compliance:
        return "optout_confirmation" if plan.outcome == "opt_out" else "help"
    return "auto"


def guard_loops(plan: Plan, app: AppFacts, body: str, now: float) -> tuple[Plan, LoopRow, bool]:
    """Auto-reply-loop detection for the app the MO was handled for (pure): the replies that may go, the state to
    store, and whether auto_reply_loop fires (once per cool-down)."""
    settings = _loop_settings(app.loop_limits)
    verdict = on_mo(_state(app.loop), body, now, settings)
    state, fire = verdict.state, verdict.fire_loop_event
    kept: list[Reply] = []
    for reply in plan.replies:
        decision = may_reply(state, _reply_kind(plan, reply), now, settings)
        state, fire = decision.state, fire or decision.fire_loop_event
        if decision.allowed:
            kept.append(reply)
    return replace(plan, replies=tuple(kept)), _row(state), fire


def effects_of(mo: Mo, plan: Plan, facts: MoFacts, now: float) -> MoEffects:
    """What to write for a plan (pure), after loop detection."""
    app = next((a for a in facts.apps if a.id == plan.app_id), None)
    loop: LoopRow | None = None
    fire = False
    if app is not None:
        plan, loop, fire = guard_loops(plan, app, mo.body, now)
    incoming = None
    if plan.deliver:
        incoming = {
            "phone_number": mo.phone,
            "body": mo.body,
            "sent_at": mo.received_at.isoformat(),
            "auto_subscribe": "true" if plan.subscribe or plan.await_confirmation is not None else "false",
            "auto_responded": "true" if plan.replies else "false",
        }
        if plan.tag is not None:
            incoming["tag"] = plan.tag
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
        new_contact=plan.app_id is not None and plan.outcome == "routed" and plan.new_contact,
        session_seconds=app.session_idle_seconds if app is not None and plan.session else None,
        subscribe=plan.subscribe,
        subscribe_source="confirmation" if plan.confirmed else "keyword",
        await_confirmation=(plan.keyword or "", plan.await_confirmation) if plan.await_confirmation is not None
        else None,
        confirmed=plan.confirmed,
        loop=loop,
        loop_event=fire,
        possible_opt_out=plan.possible_opt_out,
    )


class MoProcessor:
    """Claims stored MOs in per-phone order and runs the module chain on each."""

    def __init__(
        self, pool: Pool, dsn: str, worker_id: str, *, lease_seconds: float = 30.0,
        poll_seconds: float = 1.0, batch: int = 100, clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # wall-clock epoch seconds: sessions, confirmations and loop state are shared
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
        """Handle one batch of MOs, then the gateways' answers waiting; returns how many MOs were claimed."""
        mos = await store.claim_mos(self.pool, self.worker_id, self.batch, self.lease_seconds)
        for mo in mos:
            try:
                await self.handle(mo)
            except DB_ERRORS:
                log.exception("MO %s not handled; it runs again when its lease ends", mo.id)
        answers = 0
        while answers < self.batch and await self.handle_answer():
            answers += 1
        return len(mos) + answers

    async def handle_answer(self) -> bool:
        """Handle the oldest pending gateway answer (a reply, a closed session, a reprocessed MO); False if none."""
        now = self.clock()
        return await store.handle_next_answer(self.pool, lambda facts: answer_effects(facts, now))

    async def handle(self, mo: Mo) -> Plan:
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        async with store.mo_transaction(self.pool) as tx:
            facts = await tx.facts(mo, moment)
            context = context_of(mo, facts)
            plan = plan_mo(classify(mo.body, confirmation_pending=bool(context.pending)), context)
            await tx.apply(mo, facts.did_id, effects_of(mo, plan, facts, now), moment)
        self.handled += 1
        return plan

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN engine_inbound, reconnecting when the connection drops (a lost NOTIFY costs a poll)."""
        await notify.listener(self.dsn, notify.NEW_MOS, self.wake, name="inbound").run()
