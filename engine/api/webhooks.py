"""Carrier webhooks: Twilio status callbacks, signature-checked, written in batches.

The status callback URL carries our provider id and message id
(`/webhooks/twilio/status/{provider_id}/{message_id}`), so an update is one indexed row write and
the right auth token verifies the signature. A request is answered only after its batch commits,
so a 200 means the status is durable (a carrier retries anything else).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from engine.dispatch import statuses as st
from engine.dispatch.batcher import Batcher
from engine.metrics import Metrics
from engine.providers.twilio import validate_twilio_signature
from engine.store import queries as q

log = logging.getLogger(__name__)

ACK_TIMEOUT = 10.0  # seconds a callback waits for its batch to commit before we answer 503


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    message_id: int
    provider_status: str
    change: st.StatusChange
    error_code: int | None
    sid: str | None


class StatusIntake:
    """Receives status callbacks and writes them with one UPDATE … FROM unnest per batch."""

    def __init__(self, pool: asyncpg.Pool, public_base: str, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.metrics = metrics or Metrics()
        self.public_base = public_base.rstrip("/")
        self.tokens: dict[int, str] = {}
        self.writer = Batcher[StatusUpdate](self._write, name="statuses", max_size=2000, max_delay=0.005)
        self.received = 0
        self.rejected = 0

    async def _token(self, provider_id: int) -> str | None:
        token = self.tokens.get(provider_id)
        if token is None:
            row = await self.pool.fetchrow(q.PROVIDER_TOKEN, provider_id)
            if row is None:
                return None
            token = row["auth_token"]
            self.tokens[provider_id] = token
        return token

    async def handle_status(self, request: web.Request) -> web.Response:
        try:
            provider_id = int(request.match_info["provider_id"])
            message_id = int(request.match_info["message_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        token = await self._token(provider_id)
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self.public_base + request.path_qs
        if token is None or not validate_twilio_signature(token, url, params, signature):
            self.rejected += 1
            self.metrics.status_callbacks.labels("bad_signature").inc()
            raise web.HTTPForbidden(text="invalid signature")
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        change = st.from_twilio(status)
        if change is None:
            return web.Response(status=204)  # a status we do not track; nothing to write
        code_raw = params.get("ErrorCode")
        code = int(code_raw) if code_raw and code_raw.isdigit() else None
        self.received += 1
        self.metrics.status_callbacks.labels("accepted").inc()
        update = StatusUpdate(message_id, status.lower(), change, code, params.get("MessageSid"))
        try:
            await asyncio.wait_for(self.writer.put(update), ACK_TIMEOUT)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(text="status not yet written; retry") from None
        return web.Response(status=204)

    async def _write(self, batch: list[StatusUpdate]) -> None:
        # One row per message per statement: keep the highest-ranked update of the batch.
        best: dict[int, StatusUpdate] = {}
        for u in batch:
            cur = best.get(u.message_id)
            if cur is None or u.change.rank > cur.change.rank:
                best[u.message_id] = u
        rows = list(best.values())
        await self.pool.execute(
            q.APPLY_STATUSES,
            [u.message_id for u in rows],
            [u.provider_status for u in rows],
            [u.change.status for u in rows],
            [u.change.rank for u in rows],
            [u.change.state for u in rows],
            [u.error_code for u in rows],
            [u.sid for u in rows],
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/twilio/status/{provider_id}/{message_id}", self.handle_status)]
