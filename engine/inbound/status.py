"""The carrier status webhook: Twilio status callbacks, signature-checked, written in batches.

The status callback URL carries our provider id and message id
(`/webhooks/twilio/status/{provider_id}/{message_id}`), so an update is one indexed row write and
the right auth token verifies the signature. A request is answered only after its batch commits,
so a 200 means the status is durable (a carrier retries anything else).

The common case — a well-formed callback of a carrier account whose token is known — is served by the HTTP
server's fast lane (:meth:`StatusIntake.fast`, :mod:`engine.httpserver.fastlane`) without aiohttp's request
machinery; everything else (and the first callback of an account) by :meth:`StatusIntake.handle_status`. Both
make the same decision (:meth:`StatusIntake._update`) and the same answers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from aiohttp import web
from yarl import query_to_pairs

from engine import statuses as st
from engine.httpserver.fastlane import Answer, Later, header, plain_response
from engine.inbound.signed import SignedForms
from engine.metrics import Metrics
from engine.policy.senders import carrier_day_timezone, carrier_errors
from engine.providers.twilio import validate_twilio_signature
from engine.runtime.batcher import Batcher
from engine.store.database import MAX_ID, Pool
from engine.store.outbound import CarrierStatus, apply_statuses
from engine.store.senders import carrier_throttled
from engine.throttle.daily import CarrierDay

log = logging.getLogger(__name__)

ACK_TIMEOUT = 10.0  # seconds a callback waits for its batch to commit before we answer 503
_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
_ERROR_CODE = re.compile(r"[0-9]{1,9}", re.ASCII)  # engine_outbound.error_code is an integer
_SID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)  # Twilio SIDs: two letters and 32 hex digits
_SENDER = re.compile(r"\+?[A-Za-z0-9 +_&-]{1,32}", re.ASCII)  # a phone number, short code or sender ID
PATH_PREFIX = b"/webhooks/twilio/status/"
_FAST_PATH = re.compile(rb"/webhooks/twilio/status/([0-9]{1,19})/([0-9]{1,19})")
_MAX_FIELDS = 100  # a Twilio callback has about a dozen; a form with more goes the long way (aiohttp's limits)
NO_CONTENT = plain_response(204, "No Content")
FORBIDDEN = plain_response(403, "Forbidden", "invalid signature")
NOT_WRITTEN = plain_response(503, "Service Unavailable", "status not yet written; retry")


def _path_id(text: str) -> int:
    """An id from the callback URL: ASCII digits within bigint range (all we ever put there), else 404."""
    if not _ID.fullmatch(text) or not 0 < int(text) <= MAX_ID:
        raise web.HTTPNotFound()
    return int(text)


class StatusIntake:
    """Receives status callbacks and writes them with one UPDATE … FROM unnest per batch."""

    def __init__(
        self, pool: Pool, public_base: str, metrics: Metrics | None = None, *, read_timeout: float = 30.0
    ) -> None:
        self.pool = pool
        self.forms = SignedForms(pool, public_base, read_timeout=read_timeout)
        self.metrics = metrics or Metrics()
        self._accepted = self.metrics.status_callbacks.labels("accepted")  # resolved once: hot path
        # A lone callback is written at once; under load one write per 5 ms carries them all (each answered once
        # its write commits).
        self.writer = Batcher[CarrierStatus](self._write, name="statuses", max_size=2000, max_delay=0.005)
        self.received = 0
        self.errors = carrier_errors()
        self.carrier_day = CarrierDay(carrier_day_timezone())  # on the wall clock: when a daily cap resets

    @property
    def public_base(self) -> str:
        return self.forms.public_base

    @public_base.setter
    def public_base(self, value: str) -> None:
        self.forms.public_base = value.rstrip("/")

    @property
    def rejected(self) -> int:
        return self.forms.rejected

    async def handle_status(self, request: web.Request) -> web.Response:
        provider_id = _path_id(request.match_info["provider_id"])
        message_id = _path_id(request.match_info["message_id"])
        params = await self.forms.read(request, provider_id)
        if isinstance(params, web.Response):
            if params.status == 403:
                self.metrics.status_callbacks.labels("bad_signature").inc()
            return params
        update = self._update(message_id, params)
        if update is None:
            return web.Response(status=204)  # a status we do not track; nothing to write
        if self._carrier_throttled(update) and await self._slow_down(update):
            return web.Response(status=204)
        try:
            async with asyncio.timeout(ACK_TIMEOUT):  # no extra task per callback, unlike wait_for
                await self.writer.put(update)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(text="status not yet written; retry") from None
        return web.Response(status=204)

    def fast(self, path: bytes, head: bytes, low: bytes, body: bytes) -> Answer | None:
        """The fast lane's handler: the same answers as :meth:`handle_status` for a well-formed callback; None
        (aiohttp serves it, the long way) for anything else."""
        m = _FAST_PATH.fullmatch(path)
        if m is None:
            return None
        provider_id, message_id = int(m[1]), int(m[2])
        if not (0 < provider_id <= MAX_ID and 0 < message_id <= MAX_ID) or body.count(b"&") >= _MAX_FIELDS:
            return None
        try:
            params = dict(query_to_pairs(body.rstrip().decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            return None
        raw = header(head, low, b"\r\nx-twilio-signature:")
        signature = "" if raw is None else raw.decode("latin-1")
        url = self.forms.public_base + path.decode("ascii")
        token = self.forms.tokens.get(provider_id)
        if token is None:  # the account's first callback here: its token is read once
            return Later(asyncio.ensure_future(self._first(provider_id, message_id, url, params, signature)), None)
        return self._signed(token, message_id, url, params, signature)

    def _signed(self, token: str | None, message_id: int, url: str, params: dict[str, str],
                signature: str) -> Answer:
        if token is None or not validate_twilio_signature(token, url, params, signature):
            self.forms.rejected += 1
            self.metrics.status_callbacks.labels("bad_signature").inc()
            return FORBIDDEN
        update = self._update(message_id, params)
        if update is None:
            return NO_CONTENT
        if self._carrier_throttled(update):  # rare: the long way, as handle_status
            return Later(asyncio.ensure_future(self._throttled(update)), None)
        return Later(self.writer.put_later(update), NO_CONTENT)

    async def _throttled(self, update: CarrierStatus) -> bytes:
        if not await self._slow_down(update):
            try:
                async with asyncio.timeout(ACK_TIMEOUT):
                    await self.writer.put(update)
            except TimeoutError:
                return NOT_WRITTEN
        return NO_CONTENT

    async def _first(self, provider_id: int, message_id: int, url: str, params: dict[str, str],
                     signature: str) -> bytes:
        answer = self._signed(await self.forms.token(provider_id), message_id, url, params, signature)
        if isinstance(answer, bytes):
            return answer
        try:
            async with asyncio.timeout(ACK_TIMEOUT):
                await asyncio.shield(answer.future)
        except TimeoutError:
            return NOT_WRITTEN
        return NO_CONTENT

    def _update(self, message_id: int, params: dict[str, str]) -> CarrierStatus | None:
        """What a signed callback changes: None for a status we do not track (nothing to write)."""
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        change = st.from_twilio(status)
        if change is None:
            return None
        # Only values the columns can hold go into the batch: one unwritable value would fail the whole
        # batch, and the batcher retries it forever, stalling every other callback behind it.
        code_raw = (params.get("ErrorCode") or "").strip()
        code = int(code_raw) if _ERROR_CODE.fullmatch(code_raw) else None
        sid = params.get("MessageSid")
        if sid is not None and not _SID.fullmatch(sid):
            sid = None
        sender = params.get("From")
        if sender is not None and not _SENDER.fullmatch(sender):
            sender = None
        self.received += 1
        self._accepted.inc()
        return CarrierStatus(message_id, status.strip().lower(), change, code, sid, sender)

    def _carrier_throttled(self, update: CarrierStatus) -> bool:
        """A refusal for the campaign's rate (30022) or the brand's daily cap (30023)."""
        return update.error_code in self.errors.codes and update.change.state in ("failed", "undelivered")

    async def _slow_down(self, update: CarrierStatus) -> bool:
        """The carrier refused the message for its campaign's rate (30022) or its brand's daily cap (30023): the
        message goes back to the queue instead of failing, and the campaign slows down or the brand waits for the
        carrier day's reset. False when it was not requeued (sent too often already, or a stale callback): then the
        refusal is written as any other."""
        code = update.error_code
        assert code is not None
        reset = self.carrier_day.bounds(time.time())[1]
        done = await carrier_throttled(self.pool, [(update.message_id, code, update.sid)], reset_epoch=reset,
                                       errors=self.errors)
        for t in done:
            level, name = ("brand", t.brand) if code in self.errors.brand_daily_cap else ("campaign", t.campaign)
            self.metrics.carrier_throttled.labels(level, name or "-", str(code)).inc()
        return bool(done)

    async def _write(self, batch: list[CarrierStatus]) -> None:
        await apply_statuses(self.pool, batch)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/twilio/status/{provider_id}/{message_id}", self.handle_status)]
