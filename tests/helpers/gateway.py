"""A real loopback application gateway for callback tests: records, verifies and answers callbacks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from engine.callbacks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass(frozen=True, slots=True)
class Received:
    form: dict[str, str]
    raw: bytes
    verified: bool
    answered: int  # HTTP status we answered (0: never answered, the request hung)
    at: float


@dataclass
class Gateway:
    """Answers 200 unless told otherwise.

    fail_first: answer 500 to the first N requests of each event_id;
    hang: sleep this long before answering (every request);
    hold: answer nothing until :meth:`release` (then answer as usual), so a test can observe requests in flight;
    secret: verify X-Engine-Signature with it; reject_unsigned: answer 401 when verification fails.
    """

    secret: str = ""
    fail_first: int = 0
    hang: float = 0.0
    hold: bool = False
    always_fail: bool = False
    reject_unsigned: bool = False
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    _seen: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/callbacks", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/callbacks"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Let every held request (and every later one) be answered."""
        self._released.set()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        verified = bool(self.secret) and verify_signature(
            self.secret, request.headers.get(TIMESTAMP_HEADER, ""), raw,
            request.headers.get(SIGNATURE_HEADER, ""), now=time.time(),
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        status = 0
        try:
            if self.hang:
                await asyncio.sleep(self.hang)
            if self.hold:
                await self._released.wait()
            event_id = form.get("event_id", "")
            self._seen[event_id] += 1
            if self.reject_unsigned and not verified:
                status = 401
                return web.Response(status=401, text="bad signature")
            if self.always_fail or self._seen[event_id] <= self.fail_first:
                status = 500
                return web.Response(status=500, text="gateway is down")
            status = 200
            return web.Response(text="ok")
        finally:
            self.in_flight -= 1
            self.received.append(Received(form, raw, verified, status, time.time()))

    def delivered(self) -> list[Received]:
        """Requests answered 2xx."""
        return [r for r in self.received if 200 <= r.answered < 300]
