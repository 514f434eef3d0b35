"""The place stage: admitted messages onto DIDs (pure: the scheduler is pure, the caller does the writing).

A tag keeps its conversation on one DID; anything else goes to the least-loaded DID of its pool. What
would wait longer than the horizon stays in the database until its turn (no head-of-line blocking).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine import statuses as st
from engine.dispatch.dids import DidBook
from engine.store.outbound import Outcome, TagKey
from engine.throttle import Scheduler

__all__ = ["Pending", "Placement", "place", "reroute"]


@dataclass(slots=True)
class Pending:
    """A claimed, admitted message held in memory until it is sent."""

    id: int
    app_id: int
    smsc_id: int
    recipient: str
    body: str  # as it will be sent (after smart encoding)
    segments: int
    encoding: str
    attempts: int
    tag: str | None = None
    returning: bool = False  # was left in the queue for its turn and now takes its reserved slot
    queued_at: float = 0.0  # clock time it entered a DID queue (throttle wait metric)
    from_did: int | None = None  # a reply goes out from the DID the phone texted
    expires_at: datetime | None = None  # never sent at or after this (MARK_SENDING refuses it)
    urgent: bool = False  # transactional or a reply: goes ahead of bulk and marketing on its DID
    cap_exempt: bool = False  # urgent work of an app that does not hold it at its brand's daily cap

    @property
    def conversation(self) -> TagKey | None:
        return (self.app_id, self.recipient, self.tag) if self.tag is not None else None


@dataclass(slots=True)
class Placement:
    """What placing a batch decided besides the pushes onto the scheduler."""

    orphans: list[Pending] = field(default_factory=list)  # their DID is between workers: back to the queue
    failed: list[Outcome] = field(default_factory=list)
    deferred: list[tuple[int, float]] = field(default_factory=list)  # (id, seconds) left in the database
    new_tags: dict[TagKey, int] = field(default_factory=dict)  # conversations pinned now: store before sending
    capped: list[tuple[int, float]] = field(default_factory=list)  # (id, seconds) held by a brand's daily cap


def place(
    fresh: Sequence[Pending],
    sticky: Mapping[TagKey, int],
    scheduler: Scheduler[Pending],
    book: DidBook,
    now: float,
    horizon: float,
) -> Placement:
    """Queue what can go within *horizon* seconds; leave the rest in the database until its turn.

    A tag without a usable DID gets the least-loaded one, chosen as the batch is placed so new conversations
    spread over the pool; the choice is stored (new_tags) before anything is sent.
    """
    out = Placement()
    pins = dict(sticky)
    for p in fresh:
        key = p.conversation
        did = p.from_did if p.from_did is not None else pins.get(key) if key is not None else None
        if book.held_elsewhere(did):
            out.orphans.append(p)  # its DID is between workers: the holder will send it
            continue
        if did is None or not scheduler.is_enabled(did):
            did = scheduler.choose(p.smsc_id, now)  # (a reply whose DID was removed: any DID of the pool)
            if key is not None:
                pins[key] = out.new_tags[key] = did
        if p.segments > scheduler.max_cost(did):
            out.failed.append(Outcome(p.id, st.SEND_FAILED, None, "message has more segments than the DID's limit"))
            continue
        held = scheduler.held_until(did, p.segments, now, urgent=p.urgent, exempt=p.cap_exempt)
        if held > now:  # its brand's daily cap is reached for this kind of message: back until the carrier day resets
            out.capped.append((p.id, held - now))
            continue
        # A conversation's DID is fixed: a new message queues behind what is reserved for it, and a returning one
        # takes its reserved turn. Untagged work is never reserved (it may return to any DID); the claim skips
        # saturated pools, so it rarely lands here.
        pinned = key is not None or p.from_did is not None
        start = scheduler.project(did, now, reserved=pinned and not p.returning, urgent=p.urgent)
        if start - now > horizon:
            if pinned and not p.returning:
                start = scheduler.reserve(did, p.segments, now)
            out.deferred.append((p.id, max(1.0, start - now - horizon / 2)))
            continue
        p.queued_at = now
        scheduler.push(did, p.segments, p, now, urgent=p.urgent)
    return out


def reroute(p: Pending, scheduler: Scheduler[Pending], now: float) -> bool:
    """Place a message whose DID went away on another DID of its pool; False when it must go back to the
    queue instead (a conversation or a reply stays on its DID: whoever holds that DID now sends it)."""
    if p.tag is None and p.from_did is None and scheduler.has_pool(p.smsc_id):
        did = scheduler.choose(p.smsc_id, now)
        if p.segments <= scheduler.max_cost(did):
            scheduler.push(did, p.segments, p, now, urgent=p.urgent)
            return True
    return False
