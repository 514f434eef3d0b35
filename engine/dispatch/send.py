"""The send stage: take what the scheduler says is due, mark it 'sending' in one round trip, fire the requests.

Bounded in flight; sends whose carrier account is paused (429) or whose circuit is open wait for it; a DID
with a send between decision and answer is never handed to another worker (DidBook.busy). Each answer
goes to the record stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine import statuses as st
from engine.config import Settings
from engine.dispatch.carriers import Binding, Carriers
from engine.dispatch.dids import DidBook
from engine.dispatch.place import Pending
from engine.dispatch.record import Accept, Fail, Recorder, RetryLater, next_step
from engine.metrics import Metrics
from engine.policy.admission import BLACKLISTED, EXPIRED, expired
from engine.policy.lifetime import carrier_validity
from engine.policy.senders import MESSAGING_SERVICE, carrier_errors
from engine.providers import OutboundRequest, SendResult
from engine.providers.http1 import InFlight, Reply
from engine.store import outbound
from engine.store.database import DB_ERRORS, Pool
from engine.store.inbound import carrier_opt_outs
from engine.store.outbound import Accepted, Outcome, Retry, SendMark
from engine.throttle import Decision, Scheduler

__all__ = ["Sender"]

log = logging.getLogger(__name__)

UNSUBSCRIBED = 21610  # Twilio: "Attempt to send to unsubscribed recipient"


class Sender:
    """Dispatches due sends until stopped; `drain()` waits for those in flight."""

    def __init__(
        self,
        pool: Pool,
        worker_id: str,
        settings: Settings,
        scheduler: Scheduler[Pending],
        book: DidBook,
        carriers: Carriers,
        recorder: Recorder,
        orphans: list[Pending],
        *,
        clock: Callable[[], float],
        metrics: Metrics,
        lease_valid_until: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.settings = settings
        self.scheduler = scheduler
        self.book = book
        self.carriers = carriers
        self.recorder = recorder
        self.orphans = orphans
        self.clock = clock
        self.wall_clock = wall_clock  # epoch seconds: message lifetimes are wall-clock instants
        self.metrics = metrics
        self.lease_valid_until = lease_valid_until
        # Metric children resolved once (labels() takes a lock and a dict lookup per call).
        self._send_outcome = {k: metrics.sends.labels(k) for k in ("accepted", "retryable", "rejected")}
        self._slow_codes = carrier_errors().codes  # 10DLC rate / daily cap refusals: retried, not failed
        self.pushed = asyncio.Event()  # the scheduler got work
        self.in_flight = 0
        self.sent_count = 0
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._flights: set[asyncio.Future[Reply]] = set()  # answers of requests written without a task
        self._launching = 0  # batches between pop_due and their requests' start
        self.marking: list[Pending] = []  # the batch being marked 'sending' (still claimed meanwhile)

    async def run(self) -> None:
        """The dispatch loop. On stop, queued messages stay claimed (released by the worker); in-flight sends finish."""
        while not self.stopping:
            free = self.settings.max_in_flight - self.in_flight
            if free <= 0:
                await self._wait_pushed(0.01)
                continue
            now = self.clock()
            if now >= self.lease_valid_until():
                # Our DID leases could not be renewed: another worker may hold them now.
                await self._wait_pushed(0.1)
                continue
            decisions = self.scheduler.pop_due(now, limit=free)
            if not decisions:
                nxt = self.scheduler.next_due()
                await self._wait_pushed(self.settings.poll_seconds if nxt is None else max(0.0, nxt - now))
                continue
            await self._launch(decisions)

    def stop(self) -> None:
        self.stopping = True
        self.pushed.set()

    async def drain(self) -> None:
        """Let in-flight sends finish, for at most the configured drain time — including those of a batch being
        marked 'sending' right now, whose requests start only after the mark (else they would stay 'sending')."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_seconds
        while (self._tasks or self._flights or self._launching) and loop.time() < deadline:
            if self._tasks or self._flights:
                pending: list[asyncio.Future[Any]] = [*self._tasks, *self._flights]
                await asyncio.wait(pending, timeout=deadline - loop.time())
            else:
                await asyncio.sleep(0.01)

    async def _wait_pushed(self, seconds: float) -> None:
        self.pushed.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pushed.wait(), seconds)

    def _gated(self, decisions: list[Decision[Pending]]) -> list[Decision[Pending]]:
        """Hold back sends whose carrier account is paused (429) or whose circuit is open."""
        now = self.clock()
        passed: list[Decision[Pending]] = []
        for d in decisions:
            binding = self.carriers.get(d.payload.smsc_id)
            if binding is None or binding.gate.allow(now):
                passed.append(d)
            else:
                retry_at = max(binding.gate.reopen_at(), now + 0.2)
                self.scheduler.push_later(d.did_id, d.cost, d.payload, retry_at, urgent=d.payload.urgent)
        return passed

    async def _launch(self, decisions: list[Decision[Pending]]) -> None:
        """Record 'sending' for the batch in one round trip, then fire the requests."""
        self._launching += 1
        self.marking = [d.payload for d in decisions]
        try:
            await self._mark_and_fire(self._gated(decisions))
        finally:
            self._launching -= 1
            self.marking = []

    async def _mark_and_fire(self, decisions: list[Decision[Pending]]) -> None:
        seen: set[int] = set()
        unique: list[Decision[Pending]] = []
        for d in decisions:  # one message twice in memory (re-claimed after a failed batch): one send only
            if d.payload.id not in seen:
                seen.add(d.payload.id)
                unique.append(d)
        decisions = unique
        if not decisions:
            return
        for d in decisions:  # a DID with a send between decision and reply is never handed over
            self.book.start_send(d.did_id)
        marks = [
            SendMark(d.payload.id, d.did_id, self.book.number(d.did_id), d.payload.segments, d.payload.encoding,
                     d.payload.expires_at)
            for d in decisions
        ]
        now = datetime.fromtimestamp(self.wall_clock(), UTC)
        try:
            ok = await outbound.mark_sending(self.pool, self.worker_id, self.settings.lease_seconds, marks, now)
        except DB_ERRORS:
            log.exception("marking %d messages as sending failed; they go back to the queue", len(decisions))
            # Not sent (their tokens are spent, which only errs on the safe side).
            self.orphans.extend(d.payload for d in decisions)
            for d in decisions:
                self.book.end_send(d.did_id)
            return
        if len(ok) < len(decisions):
            await self._refuse_unmarked([d.payload for d in decisions if d.payload.id not in ok], now)
        base = self.settings.callback_base
        for d in decisions:
            p = d.payload
            if p.id not in ok:
                self.book.end_send(d.did_id)
                continue  # lost our claim (lease expired and someone else took it), opted out, or expired
            binding = self.carriers.get(p.smsc_id)
            if binding is None:
                self.book.end_send(d.did_id)
                self.recorder.outcomes.put_nowait(Outcome(p.id, st.SEND_FAILED, None, "no provider configured"))
                continue
            did = self.book.get(d.did_id)
            assert did is not None  # (a DID with a send in flight stays known)
            request = OutboundRequest(
                message_id=p.id,
                to=p.recipient,
                # A Messaging Service sender has no From: Twilio picks one from the service's pool.
                from_=None if did.sender_type == MESSAGING_SERVICE else did.number,
                body=p.body,
                status_callback=f"{base}/webhooks/twilio/status/{binding.provider_id}/{p.id}",
                # The rest of its lifetime, so the carrier's own queue cannot deliver it late either.
                validity_period=carrier_validity(p.expires_at, now),
            )
            self.in_flight += 1
            self._fire(d, binding, request)

    async def _refuse_unmarked(self, unmarked: list[Pending], now: datetime) -> None:
        """MARK_SENDING leaves a message unmarked when its phone opted out while it waited in memory, or when its
        expiry passed meanwhile: it ends failed (reason blacklisted) or expired like one refused at admission.
        (The others lost their claim.)"""
        try:
            ours = await outbound.unmarked_claims(self.pool, self.worker_id, [p.id for p in unmarked])
        except DB_ERRORS:
            log.warning("could not check %d unmarked messages; their lease returns them to the queue", len(unmarked))
            return
        for p in unmarked:
            if p.id not in ours:
                continue
            if ours[p.id]:
                self.recorder.outcomes.put_nowait(Outcome(
                    p.id, st.SEND_FAILED, None, "the phone opted out of this application", reason=BLACKLISTED
                ))
            elif expired(p.expires_at, now):
                self.recorder.outcomes.put_nowait(Outcome(
                    p.id, st.EXPIRED, None, "the message expired before it could be sent", reason=EXPIRED
                ))

    def _fire(self, d: Decision[Pending], binding: Binding, request: OutboundRequest) -> None:
        """Send one request: written at once on an idle connection, its answer handled by a callback (a task per
        send cost ~10 µs of the loop's time), else by a task (waiting for or opening a connection)."""
        p = d.payload
        try:
            started = self.clock()
            self.scheduler.confirm(d, started)
            if p.queued_at:
                self.metrics.throttle_wait.observe(max(0.0, d.decided_at - p.queued_at))
            flight = binding.client.begin_send(request)
        except Exception as exc:  # as _send: a provider must not raise; if it does, treat as ambiguous
            log.exception("provider raised for message %s", p.id)
            self._sent(d, binding, SendResult(ok=False, retryable=True, ambiguous=True, error_message=repr(exc)))
            return
        if flight is None:
            task = asyncio.create_task(self._send(d, binding, request, started))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._flights.add(flight.answer)
        flight.answer.add_done_callback(lambda _: self._answered(d, binding, flight, started))

    def _answered(self, d: Decision[Pending], binding: Binding, flight: InFlight, started: float) -> None:
        """The answer of a request _fire wrote: as _send after its await."""
        self._flights.discard(flight.answer)
        try:
            result = binding.client.finish_send(flight)
            answered = self.clock()
            self.scheduler.settle(d, started, answered)
            self.metrics.provider_latency.observe(answered - started)
        except asyncio.CancelledError:  # as a cancelled _send task: nothing is recorded
            self._done_sending(d)
            return
        except Exception as exc:
            log.exception("provider raised for message %s", d.payload.id)
            result = SendResult(ok=False, retryable=True, ambiguous=True, error_message=repr(exc))
        self._sent(d, binding, result)

    def _sent(self, d: Decision[Pending], binding: Binding, result: SendResult) -> None:
        self._done_sending(d)
        if self._settled(d, binding, result):
            task = asyncio.create_task(self._carrier_opt_out(d.payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _done_sending(self, d: Decision[Pending]) -> None:
        self.in_flight -= 1
        self.book.end_send(d.did_id)
        self.pushed.set()

    async def _send(self, d: Decision[Pending], binding: Binding, request: OutboundRequest, started: float) -> None:
        """A send that waits for (or opens) a connection: the request's confirm() was made by _fire."""
        p = d.payload
        metrics = self.metrics
        try:
            result = await binding.client.send(request)
            answered = self.clock()
            # The carrier counted this send at some moment before its answer reached us: keep the
            # 60-s window from that latest moment, so carrier-side delays cannot squeeze the window.
            self.scheduler.settle(d, started, answered)
            metrics.provider_latency.observe(answered - started)
        except Exception as exc:  # a provider must not raise; if it does, treat as ambiguous
            log.exception("provider raised for message %s", p.id)
            result = SendResult(ok=False, retryable=True, ambiguous=True, error_message=repr(exc))
        finally:
            self._done_sending(d)
        if self._settled(d, binding, result):
            await self._carrier_opt_out(p)

    def _settled(self, d: Decision[Pending], binding: Binding, result: SendResult) -> bool:
        """Count and record the outcome; True when the carrier says the recipient opted out (21610)."""
        p = d.payload
        p.attempts += 1
        now = self.clock()
        if result.http_status == 429:
            binding.gate.pause(now + (result.retry_after if result.retry_after is not None else 1.0))
            binding.gate.record(True, now)  # throttled, not sick
        else:
            binding.gate.record(result.ok or not result.retryable, now)
        self._send_outcome["accepted" if result.ok else "retryable" if result.retryable else "rejected"].inc()
        self._record(d, result)
        return result.error_code == UNSUBSCRIBED

    async def _carrier_opt_out(self, p: Pending) -> None:
        """The carrier says the recipient opted out (e.g. replied STOP to the carrier itself): obey it like a STOP."""
        try:
            await carrier_opt_outs(self.pool, [(p.app_id, p.recipient)])
        except DB_ERRORS:
            log.exception("could not blacklist the recipient of message %s after the carrier's 21610", p.id)

    def _record(self, d: Decision[Pending], result: SendResult) -> None:
        p = d.payload
        step = next_step(
            p.id, result, p.attempts, max_attempts=self.settings.max_attempts,
            at_least_once=self.settings.delivery == "at-least-once", stopping=self.stopping,
            slow_down=self._slow_codes,
        )
        if isinstance(step, Accept):
            self.sent_count += 1
            self.recorder.accepted.put_nowait(Accepted(p.id, step.sid, step.status))
        elif isinstance(step, RetryLater):
            self.recorder.retries.put_nowait(Retry(p.id, result.error_code, result.error_message))
            self.scheduler.push_later(d.did_id, p.segments, p, self.clock() + step.delay, urgent=p.urgent)
            self.pushed.set()
        else:
            assert isinstance(step, Fail)
            self.recorder.outcomes.put_nowait(step.outcome)
