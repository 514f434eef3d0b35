"""The fake carrier: one aiohttp server composing the Messages API, accounts, the number market, the
status-callback sender, the inbound-text (MO) sender, fault injection and the ``/_fake/`` control endpoints.

This module owns only the lifecycle (start, stop, drain) and the public face tests, the demo and the
benchmarks use: counters and records, ``inject``/``hang``/``reset``/``stats``, numbers and their SmsUrl
(``add_number``, ``sms_url``) and ``send_inbound``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any, Self

from aiohttp import web

from engine.testing.accounts import ACCOUNT_PATH, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Accounts, fetch_account
from engine.testing.callbacks import CallbackMode, CallbackSender
from engine.testing.control import ControlApi
from engine.testing.faults import Faults
from engine.testing.inbound import InboundSender, MoDelivery
from engine.testing.messages import MessagesApi
from engine.testing.numbers import NumberMarket
from engine.testing.records import AcceptedRecord, Ledger
from engine.testing.services import MessagingServices

__all__ = ["FakeCarrier", "run_fake_carrier"]


class FakeCarrier:
    """Twilio-compatible loopback carrier with status callbacks, fault injection and a record of sends."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        latency: float = 0.05,
        failure_rate: float = 0.0,
        callbacks: CallbackMode = "all",
        seed: int | None = None,
        callback_concurrency: int = 64,
    ) -> None:
        """Configure only; sockets open in :meth:`start`."""
        if callbacks not in ("all", "final", "none"):
            raise ValueError(f"callbacks must be 'all', 'final' or 'none', not {callbacks!r}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be within [0, 1]")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if callback_concurrency < 1:
            raise ValueError("callback_concurrency must be >= 1")
        rng = random.Random(seed)  # one generator for sids, outcomes and numbers: a seed replays a run
        self._accounts = Accounts(accounts if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN})
        self._ledger = Ledger()
        self._faults = Faults()
        self._stopping = asyncio.Event()
        self._callbacks = CallbackSender(
            self._ledger, self._accounts.tokens, mode=callbacks, latency=latency, concurrency=callback_concurrency
        )
        self._services = MessagingServices()
        self._messages = MessagesApi(
            self._ledger, self._faults, self._callbacks, self._stopping, rng, failure_rate=failure_rate,
            services=self._services,
        )
        self._market = NumberMarket(rng)
        self._inbound = InboundSender(self._market, self._accounts.tokens, rng)
        self._control = ControlApi(self._ledger, self._faults, self.reset, self._inbound, self.add_service)
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    def __repr__(self) -> str:
        return (
            f"FakeCarrier(base_url={self.base_url!r}, accounts={sorted(self.accounts)!r}, "
            f"accepted={self.accepted}, rejected={self.rejected})"
        )

    # ---- configuration and what it saw ------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, str]:
        """Account sid -> auth token."""
        return self._accounts.tokens

    @property
    def latency(self) -> float:
        """Seconds from accepting a message to its first status callback."""
        return self._callbacks.latency

    @property
    def failure_rate(self) -> float:
        """Share of accepted messages that end undelivered or failed."""
        return self._messages.failure_rate

    @property
    def callbacks(self) -> CallbackMode:
        return self._callbacks.mode

    @property
    def callback_concurrency(self) -> int:
        return self._callbacks.concurrency

    @property
    def numbers(self) -> dict[str, tuple[str, str]]:
        """Numbers bought through IncomingPhoneNumbers: number -> (account sid, PN sid)."""
        return self._market.numbers

    def sms_url(self, number: str) -> str | None:
        """The SmsUrl of *number* (set when it was bought or through the update endpoint); None when unset."""
        owned = self._market.numbers.get(number)
        return (self._market.sms_of(owned[1])[0] or None) if owned is not None else None

    def add_number(self, number: str, account: str | None = None) -> str:
        """Give *account* (default: the only or first account) the number, as if it bought it; returns its PN sid."""
        owner = account if account is not None else next(iter(self.accounts))
        if owner not in self.accounts:
            raise ValueError(f"unknown account {owner!r}")
        return self._market.add(number, owner)

    def add_service(self, sid: str, senders: list[str], account: str | None = None) -> None:
        """Give *account* (default: the only or first one) Messaging Service *sid* with this sender pool: a message
        sent with its MessagingServiceSid and no From goes from the pool's senders in turn."""
        owner = account if account is not None else next(iter(self.accounts))
        if owner not in self.accounts:
            raise ValueError(f"unknown account {owner!r}")
        self._services.add(sid, owner, senders)

    def service_senders(self, sid: str) -> list[str]:
        return self._services.senders(sid)

    async def send_inbound(self, from_: str, to: str, body: str, *, message_sid: str | None = None) -> MoDelivery:
        """Text *to* from *from_*, as ``POST /_fake/inbound`` does: a signed webhook to its SmsUrl (NoSmsUrl
        when it has none); reusing *message_sid* re-sends that message."""
        return await self._inbound.send(from_, to, body, message_sid=message_sid)

    @property
    def inbound_sent(self) -> list[MoDelivery]:
        """Every inbound webhook sent since start (or the last reset), with the status it got."""
        return self._inbound.sent

    @property
    def records(self) -> list[AcceptedRecord]:
        return self._ledger.records

    @property
    def accepted(self) -> int:
        return self._ledger.accepted

    @property
    def rejected(self) -> int:
        return self._ledger.rejected

    @property
    def callbacks_sent(self) -> int:
        return self._ledger.callbacks_sent

    @property
    def callbacks_failed(self) -> int:
        return self._ledger.callbacks_failed

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the base URL, e.g. http://127.0.0.1:54321."""
        if self._runner is not None:
            raise RuntimeError("FakeCarrier already started")
        self._stopping.clear()
        # The gate goes first: an injected failure answers a create request before authentication does.
        app = web.Application(middlewares=[self._messages.gate, self._accounts.middleware])
        app.add_routes(self._messages.routes())
        app.router.add_get(f"{ACCOUNT_PATH}.json", fetch_account)
        app.add_routes(self._market.routes())
        app.add_routes(self._control.routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        display_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{display_host}:{bound_port}"
        self._callbacks.start()
        self._inbound.start()
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and drop callbacks not yet delivered; safe to call twice."""
        self._stopping.set()  # wakes hung requests so shutdown is quick
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self._callbacks.stop()
        await self._inbound.stop()

    async def drain(self) -> None:
        """Wait until every status callback scheduled so far has been delivered (or given up on)."""
        await self._callbacks.drain()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- fault injection and bookkeeping ---------------------------------------------------------

    def inject(self, status: int, count: int, retry_after: float | None = None, code: int | None = None) -> None:
        """Make the next ``count`` create requests fail with HTTP ``status`` (429 adds Retry-After)."""
        self._faults.inject(status, count, retry_after=retry_after, code=code)

    def refuse_next(self, count: int, code: int, status: str = "undelivered") -> None:
        """The next *count* accepted messages end *status* with ErrorCode *code* in their status callbacks (e.g. a
        10DLC carrier's 30022 rate limit or 30023 daily cap: accepted by the API, refused downstream)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        if status not in ("undelivered", "failed"):
            raise ValueError("status must be 'undelivered' or 'failed'")
        self._messages.forced.extend([(status, code)] * count)

    def hang(self, count: int, seconds: float) -> None:
        """Make the next ``count`` create requests wait ``seconds`` before answering (timeout tests)."""
        self._faults.hang(count, seconds)

    def reset(self) -> None:
        """Forget records, counters, inbound webhooks sent and pending faults (numbers stay; callbacks already
        scheduled still go out)."""
        self._ledger.reset()
        self._faults.clear()
        self._inbound.sent.clear()

    def stats(self) -> dict[str, int]:
        """Counters for /_fake/stats."""
        return self._ledger.stats()


async def run_fake_carrier(host: str, port: int, **kwargs: Any) -> None:
    """Serve a FakeCarrier until cancelled (``engine fake-carrier``); prints its URL once listening."""
    carrier = FakeCarrier(**kwargs)
    base_url = await carrier.start(host, port)
    try:
        print(f"fake carrier listening on {base_url}", flush=True)
        await asyncio.Event().wait()
    finally:
        await carrier.stop()
