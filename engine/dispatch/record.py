"""The record stage: what a carrier's answer means for the message (pure), and the batched writers.

Accepted → 'sent' with the carrier's sid; retryable → again later on the same DID (unless the send may have
reached the carrier and delivery is at-most-once); ambiguous → 'unknown' (a status callback settles it);
anything else → 'failed' with the carrier's code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass

from engine import statuses as st
from engine.frozen import fast_init
from engine.providers import SendResult
from engine.runtime.batcher import Batcher
from engine.store import outbound
from engine.store.database import Pool
from engine.store.outbound import Accepted, Outcome, Retry

__all__ = ["Accept", "Fail", "Recorder", "RetryLater", "Step", "backoff", "next_step"]


@fast_init
@dataclass(frozen=True, slots=True)
class Accept:
    sid: str
    status: str


@fast_init
@dataclass(frozen=True, slots=True)
class RetryLater:
    delay: float  # seconds


@fast_init
@dataclass(frozen=True, slots=True)
class Fail:
    outcome: Outcome


Step = Accept | RetryLater | Fail


def backoff(attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential backoff with full jitter, capped at 60 s."""
    return float(rng(0.5, 1.0) * min(60.0, 2.0**attempt))


def next_step(
    message_id: int,
    result: SendResult,
    attempts: int,
    *,
    max_attempts: int,
    at_least_once: bool,
    stopping: bool,
    rng: Callable[[float, float], float] = random.uniform,
    slow_down: Collection[int] = (),
) -> Step:
    """What to do after attempt number *attempts* of a message came back with *result* (pure). A refusal whose code
    is in *slow_down* (a 10DLC rate or daily cap: 30022, 30023) is retried like a 429, not failed."""
    if result.ok:
        return Accept(result.provider_message_id or "", result.provider_status or "queued")
    may_retry = (result.retryable or result.error_code in slow_down) and (not result.ambiguous or at_least_once)
    if may_retry and attempts < max_attempts and not stopping:
        delay = result.retry_after if result.retry_after is not None else backoff(attempts, rng)
        return RetryLater(max(delay, 0.2))  # lets the retry mark land before the next attempt
    if result.ambiguous:
        return Fail(Outcome(message_id, st.UNKNOWN, result.error_code, result.error_message))
    return Fail(Outcome(message_id, st.SEND_FAILED, result.error_code, result.error_message or "send failed"))


# At most one write per stage per 5 ms under load; a lone result after a quiet spell is written at once. (20 ms
# measured no cheaper per message, with results written later.)
WRITE_DELAY = 0.005


class Recorder:
    """The worker's result writers: each flushes its batch in one statement, on size or time."""

    def __init__(self, pool: Pool, lease_seconds: float) -> None:
        self.pool = pool
        self.lease_seconds = lease_seconds
        self.accepted = Batcher[Accepted](self._write_accepted, name="accepted", max_delay=WRITE_DELAY)
        self.outcomes = Batcher[Outcome](self._write_outcomes, name="outcomes", max_delay=WRITE_DELAY)
        self.retries = Batcher[Retry](self._write_retries, name="retries", max_delay=WRITE_DELAY)
        self.batchers = (self.accepted, self.outcomes, self.retries)

    async def _write_accepted(self, batch: list[Accepted]) -> None:
        await outbound.mark_accepted(self.pool, batch)

    async def _write_outcomes(self, batch: list[Outcome]) -> None:
        await outbound.mark_outcomes(self.pool, batch)

    async def _write_retries(self, batch: list[Retry]) -> None:
        await outbound.mark_retries(self.pool, batch, self.lease_seconds)

    async def drain(self) -> None:
        for batcher in self.batchers:
            await batcher.drain()
