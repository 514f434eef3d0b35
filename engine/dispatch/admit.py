"""The admit stage: every claimed message, whichever door it came in by, passes the same admission policy.

claim → **admit** → place → send → record. The decisions are :mod:`engine.policy.admission`'s (pure);
this stage only gathers their facts in one batched lookup per claim and sorts the verdicts into what
to place, what to write as an outcome (with its delivery report) and which callback events to raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine import events as ev
from engine import statuses as st
from engine.frozen import fast_init
from engine.policy import admission as policy
from engine.segment import SegmentInfo, analyze
from engine.store import lifetime, outbound
from engine.store.database import Pool
from engine.store.outbound import Claimed, FactsRequest, Outcome
from engine.store.outbox import NewEvent

__all__ = ["Sendable", "Triage", "admit", "fact_requests", "prepare_all", "triage"]


@fast_init
@dataclass(frozen=True, slots=True)
class Sendable:
    """An admitted message and how it is billed (*info.body* is the text to send, after smart encoding)."""

    message: Claimed
    info: SegmentInfo
    expires_at: datetime | None = None  # never sent at or after this; the rest goes to the carrier


@dataclass(slots=True)
class Triage:
    """Admission's verdicts for one claimed batch, sorted by what happens next."""

    sendable: list[Sendable] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)  # final without an event: written in batches
    refused: list[Outcome] = field(default_factory=list)  # final with an event: written with it, atomically
    events: list[NewEvent] = field(default_factory=list)
    splits: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (id, parts) to rewrite first
    held: list[tuple[int, datetime]] = field(default_factory=list)  # (id, until): quiet hours, back to the queue


def prepare_all(messages: Sequence[Claimed], rules: Mapping[int, policy.AppRules]) -> list[policy.Prepared]:
    """Segment (with the app's smart flag) and split (single-SMS carriers) each message."""
    return [policy.prepare(m.body, rules[m.app_id]) for m in messages]


def fact_requests(
    messages: Sequence[Claimed], prepared: Sequence[policy.Prepared], rules: Mapping[int, policy.AppRules]
) -> list[FactsRequest]:
    """What to look up for each message: its duplicate-window body, and its flood period when it is checked."""
    requests: list[FactsRequest] = []
    for m, p in zip(messages, prepared, strict=True):
        app = rules[m.app_id]
        compliance = m.kind == policy.COMPLIANCE
        checked = app.flood_checked and m.part_of is None and not compliance
        flood = (app.flood_seconds or 0.0) if checked else 0.0
        requests.append(FactsRequest(m.id, None if compliance else p.head, flood))
    return requests


def triage(
    messages: Sequence[Claimed],
    prepared: Sequence[policy.Prepared],
    facts: Sequence[policy.Facts],
    rules: Mapping[int, policy.AppRules],
    limits: policy.BodyLimits,
    *,
    now: datetime,
) -> Triage:
    """Apply the policy to each message at *now* and sort the verdicts (pure)."""
    out = Triage()
    for m, p, f in zip(messages, prepared, facts, strict=True):
        app = rules[m.app_id]
        verdict = policy.decide(
            recipient=m.recipient, body=m.body, kind=m.kind, first_part=m.part_of is None,
            prepared=p, facts=f, rules=app, limits=limits, now=now,
        )
        info = p.info
        if isinstance(verdict, policy.TestDelivered):
            out.outcomes.append(Outcome(m.id, st.TEST_DELIVERED, segments=info.segments, encoding=info.encoding))
        elif isinstance(verdict, policy.Hold):
            out.held.append((m.id, verdict.until))
        elif isinstance(verdict, policy.Refuse):
            change = _REFUSED.get(verdict.reason, st.SEND_FAILED)
            outcome = Outcome(m.id, change, None, verdict.detail, info.segments, info.encoding, verdict.reason)
            if verdict.reason == policy.NO_UNICODE:
                out.refused.append(outcome)
                out.events.append(NewEvent(m.app_id, ev.NO_UNICODE_SUPPORT, ev.no_unicode_support(m.recipient, m.body)))
            else:
                out.outcomes.append(outcome)
        else:
            if info.replacements:
                chars = ev.invalid_characters(sorted({orig for orig, _ in info.replacements}))
                out.events.append(NewEvent(m.app_id, ev.INVALID_CHARACTERS, {**chars, "message_id": str(m.id)}))
            if p.split:
                out.splits.append((m.id, p.parts))
                info = analyze(p.head, smart=app.smart)  # this row now carries part 1
            out.sendable.append(Sendable(m, info, f.expires_at))
    return out


# How a refused message ends (anything not listed: failed).
_REFUSED: Mapping[str, st.StatusChange] = {policy.DUPLICATE: st.SUPPRESSED, policy.EXPIRED: st.EXPIRED}


async def admit(
    pool: Pool,
    worker_id: str,
    messages: Sequence[Claimed],
    rules: Mapping[int, policy.AppRules],
    limits: policy.BodyLimits,
    *,
    now: datetime,
) -> Triage:
    """Admission for a claimed batch at *now*: one lookup, the policy, the splits written before anything is sent,
    and the messages held for quiet hours back in the queue until their window opens."""
    prepared = prepare_all(messages, rules)
    facts = await outbound.admission_facts(pool, fact_requests(messages, prepared, rules))
    result = triage(messages, prepared, facts, rules, limits, now=now)
    await outbound.split_into_parts(pool, worker_id, result.splits)
    await lifetime.hold(pool, worker_id, [(i, (until - now).total_seconds()) for i, until in result.held])
    return result
