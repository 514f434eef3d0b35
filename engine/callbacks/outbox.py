"""Delivers the callback outbox: claim due events, POST them signed, record the outcome in batches.

One `OutboxDeliverer.run(stop)` task per engine process (several processes share the table safely):

- claims due `pending` rows with FOR UPDATE SKIP LOCKED and a lease (a claimed row's next attempt
  is its lease end, so a crashed deliverer's events come back by themselves);
- each application has its own lane: at most `callback_concurrency` requests in flight and a bounded
  backlog in memory. An application whose lane is full is left out of the next claims, so a slow or
  hanging gateway only ever occupies its own slots: other applications' callbacks and sending go on;
- 2xx = delivered. Anything else (status, timeout, refused connection) is retried with exponential
  backoff and jitter (base·2^n, capped, times 0.5–1.0; a longer Retry-After is honoured) until the
  event is `max_age` old, then it is dead-lettered with its last error (`engine app status NAME`).
  An application without a gateway URL gets its events dead-lettered at once ('no gateway_url');
- results are written in batches (one UPDATE … FROM unnest per outcome kind, in one transaction);
- with a DSN it LISTENs for new events on its own connection, reconnecting when it drops (until then,
  and without a DSN, it polls every `poll_seconds`).

Delivery is at least once: a receiver deduplicates on `event_id`, the same on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from engine.callbacks.answer import MAX_ANSWER_BYTES, ParsedAnswer, parse_answer
from engine.callbacks.form import encode_form
from engine.callbacks.signing import sign
from engine.providers.twilio import parse_retry_after
from engine.runtime.batcher import Batcher
from engine.runtime.clock import Clock
from engine.runtime.tasks import TaskGroup
from engine.store import notify
from engine.store import outbox as store
from engine.store.database import DB_ERRORS, Pool
from engine.store.outbox import ClaimedEvent, FailedAttempt, GatewayAnswer

log = logging.getLogger(__name__)

DAY: Final = 86400.0
NO_GATEWAY: Final = "no gateway_url"
USER_AGENT: Final = "sms-engine-callbacks/1"
_ERROR_TEXT: Final = 200  # characters of a failed response's body kept as last_error


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one delivery attempt."""

    id: int
    ok: bool
    error: str | None = None
    retry_after: float | None = None
    give_up: bool = False  # dead-letter now (no gateway URL)
    attempts: int = 0  # before this one
    answer: ParsedAnswer | None = None  # the gateway's answer to an incoming_message


def backoff_delay(
    attempts: int, *, base: float, cap: float, jitter: float, retry_after: float | None = None
) -> float:
    """Seconds before the next try after *attempts* failed ones (≥ 1): min(cap, base·2^(n-1))·jitter.

    *jitter* is drawn from [0.5, 1.0]; a Retry-After longer than that is honoured, up to *cap*.
    """
    delay = min(cap, base * 2.0 ** max(0, attempts - 1)) * jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


class _Lane:
    """One application's share: a semaphore for requests in flight, a count of events held."""

    __slots__ = ("held", "limit", "slots")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots = asyncio.Semaphore(limit)
        self.held = 0


class OutboxDeliverer:
    """Delivers engine_outbox events to application gateways until *stop* is set."""

    def __init__(
        self,
        pool: Pool,
        *,
        dsn: str | None = None,
        clock: Clock = time.time,
        session: aiohttp.ClientSession | None = None,
        max_age: float = DAY,
        base_backoff: float = 2.0,
        max_backoff: float = 3600.0,
        batch: int = 200,
        request_timeout: float = 10.0,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        backlog_per_slot: int = 8,
        rng: random.Random | None = None,
        deliverer_id: str | None = None,
    ) -> None:
        if batch < 1 or backlog_per_slot < 1:
            raise ValueError("batch and backlog_per_slot must be >= 1")
        if min(max_age, base_backoff, max_backoff, request_timeout, lease_seconds, poll_seconds) <= 0:
            raise ValueError("times must be > 0")
        self.pool = pool
        self.dsn = dsn  # for LISTEN; without it the deliverer polls
        self.clock = clock
        self.session = session
        self.max_age = max_age
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.batch = batch
        self.request_timeout = request_timeout
        self.lease_seconds = lease_seconds
        self.poll_seconds = min(poll_seconds, 1.0)
        self.backlog_per_slot = backlog_per_slot
        self.rng = rng or random.Random()
        self.deliverer_id = deliverer_id or f"cb-{uuid.uuid4().hex[:12]}"
        self.lanes: dict[int, _Lane] = {}
        self.wake = asyncio.Event()
        self.stopping = False
        self.results = Batcher[Outcome](self._write, name="outbox-results", max_size=500, max_delay=0.01)
        self.delivered = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)

    # ---- time -----------------------------------------------------------------------------------
    def _offset(self) -> float:
        """The injected clock minus the real one: added to the database's now() in every statement."""
        return self.clock() - time.time()

    # ---- lifecycle --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until *stop* is set; then finish what is in flight (briefly) and release the rest."""
        own_session = self.session is None
        if self.session is None:
            # Concurrency is bounded per application by the lanes, not by the connector.
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        try:
            async with TaskGroup("outbox") as tasks:
                if self.dsn is not None:
                    listener = notify.listener(self.dsn, notify.OUTBOX, self.wake, name="outbox")
                    tasks.spawn(listener.run(), name="listen")
                tasks.spawn(self.results.run(), name="results")
                tasks.spawn(self._lease_loop(), name="leases")
                claimer = tasks.spawn(self._claim_loop(), name="claim")
                await stop.wait()
                self.stopping = True
                self.wake.set()
                await asyncio.wait([claimer], timeout=5)
                await self._finish_in_flight(min(self.request_timeout, 5.0))
        finally:
            self.stopping = True
            await self._shutdown(own_session)

    async def _finish_in_flight(self, grace: float) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _shutdown(self, own_session: bool) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.results.drain()
            # Whatever was claimed but not attempted (or whose result could not be written) comes due now.
            await store.release(self.pool, self.deliverer_id, offset=self._offset())
        except DB_ERRORS:
            log.warning("outbox: releasing claims failed; they return when their lease ends", exc_info=True)
        if own_session and self.session is not None:
            await self.session.close()
            self.session = None

    # ---- claiming ---------------------------------------------------------------------------------
    def _full_apps(self) -> list[int]:
        return [app for app, lane in self.lanes.items() if lane.held >= lane.limit * self.backlog_per_slot]

    async def _claim_loop(self) -> None:
        while not self.stopping:
            self.wake.clear()
            full = self._full_apps()
            try:
                count = await self.claim_once(full)
            except DB_ERRORS:
                log.exception("outbox: claim failed; retrying")
                await self._sleep_or_wake(self.poll_seconds)
                continue
            if count < self.batch:
                await self._sleep_or_wake(await self._idle_wait(full))

    async def claim_once(self, full: list[int] | None = None) -> int:
        """Claim one batch of due events and start delivering them; returns how many were claimed."""
        events = await store.claim(
            self.pool, offset=self._offset(), deliverer_id=self.deliverer_id, limit=self.batch,
            lease_seconds=self.lease_seconds, skip_apps=self._full_apps() if full is None else full,
        )
        for event in events:
            lane = self._lane(event.app_id, event.concurrency)
            lane.held += 1
            task = asyncio.create_task(self._deliver(event, lane), name=f"outbox:{event.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(events)

    def _lane(self, app_id: int, limit: int) -> _Lane:
        lane = self.lanes.get(app_id)
        if lane is None:
            lane = self.lanes[app_id] = _Lane(limit)
        elif lane.limit != limit:
            # The limit changed (engine app set --callback-concurrency): new requests use a new semaphore.
            lane.limit = limit
            lane.slots = asyncio.Semaphore(limit)
        return lane

    async def _idle_wait(self, full: list[int]) -> float:
        """Sleep until the next retry is due, at most one poll interval."""
        try:
            nxt = await store.seconds_until_due(self.pool, offset=self._offset(), skip_apps=full)
        except DB_ERRORS:
            return self.poll_seconds
        if nxt is None:
            return self.poll_seconds
        return max(0.0, min(nxt, self.poll_seconds))

    async def _sleep_or_wake(self, seconds: float) -> None:
        if seconds <= 0 or self.stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    # ---- delivering -------------------------------------------------------------------------------
    async def _deliver(self, event: ClaimedEvent, lane: _Lane) -> None:
        try:
            async with lane.slots:
                if self.stopping:
                    return  # released on shutdown, delivered later
                outcome = await self.post(event)
            if outcome.ok:
                self.delivered += 1
            else:
                self.failed += 1
                log.info("outbox: %s %s to app %s failed (attempt %d): %s", event.type, event.event_id,
                         event.app_id, event.attempts + 1, outcome.error)
            self.results.put_nowait(outcome)
        finally:
            lane.held -= 1
            if lane.held == lane.limit * self.backlog_per_slot - 1:
                self.wake.set()  # the lane has room again: its app may be claimed for

    async def post(self, event: ClaimedEvent) -> Outcome:
        """One signed POST of *event* to its application's gateway; never raises for network trouble."""
        if not event.gateway_url:
            return Outcome(event.id, ok=False, error=NO_GATEWAY, give_up=True, attempts=event.attempts)
        assert self.session is not None, "post() needs run() (or a session)"
        body = encode_form(event.type, event.app_id, event.event_id, event.payload)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-Engine-Event-Id": event.event_id,
            "X-Engine-Event-Type": event.type,
            **sign(event.secret, body, now=self.clock()),
        }
        try:
            async with self.session.post(
                event.gateway_url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    answer = None
                    if event.inbound_id is not None:  # an incoming_message: the body is the app's reply
                        raw = await resp.content.read(MAX_ANSWER_BYTES)
                        answer = parse_answer(raw, resp.headers.get("Content-Type", ""))
                    return Outcome(event.id, ok=True, attempts=event.attempts, answer=answer)
                text = (await resp.content.read(_ERROR_TEXT)).decode("utf-8", "replace").strip()
                error = f"HTTP {resp.status}" + (f": {text}" if text else "")
                return Outcome(event.id, ok=False, error=error, attempts=event.attempts,
                               retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        except TimeoutError:
            return Outcome(event.id, ok=False, error=f"timeout after {self.request_timeout:g}s",
                           attempts=event.attempts)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            detail = str(exc)
            return Outcome(event.id, ok=False, attempts=event.attempts,
                           error=type(exc).__name__ + (f": {detail}" if detail else ""))

    # ---- recording --------------------------------------------------------------------------------
    async def _write(self, batch: list[Outcome]) -> None:
        failed = [
            FailedAttempt(o.id, self._delay(o), o.error or "failed", o.give_up) for o in batch if not o.ok
        ]
        answers = [
            GatewayAnswer(o.id, o.answer.body, o.answer.close_session, o.answer.reprocess)
            for o in batch if o.ok and o.answer is not None
        ]
        await store.record_attempts(
            self.pool, delivered=[o.id for o in batch if o.ok], failed=failed, offset=self._offset(),
            max_age=self.max_age, deliverer_id=self.deliverer_id, answers=answers,
        )
        if failed:
            self.wake.set()  # retries may now be due sooner than the claim loop's idle wait

    def _delay(self, outcome: Outcome) -> float:
        return backoff_delay(
            outcome.attempts + 1, base=self.base_backoff, cap=self.max_backoff,
            jitter=self.rng.uniform(0.5, 1.0), retry_after=outcome.retry_after,
        )

    # ---- leases -------------------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await store.renew_leases(
                    self.pool, self.deliverer_id, offset=self._offset(), lease_seconds=self.lease_seconds
                )
            except DB_ERRORS:
                log.exception("outbox: lease heartbeat failed")

    def stats(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "failed": self.failed, "in_memory": len(self._tasks)}
