"""Reading a carrier webhook: its form, within a time limit, signed with the carrier account's auth token.

Both carrier webhooks (status callbacks and MOs) use it, so the checks cannot drift apart: an unreadable body
gets its 400/408 and the connection closed, a missing or wrong `X-Twilio-Signature` a 403, before anything
is written.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.httpserver.forms import UnreadableBody, read_form
from engine.providers.twilio import validate_twilio_signature
from engine.store.database import Pool
from engine.store.inbound import auth_token

__all__ = ["SignedForms"]


class SignedForms:
    """Verifies webhooks of the carrier accounts (auth tokens cached per provider id)."""

    def __init__(self, pool: Pool, public_base: str, *, read_timeout: float = 30.0) -> None:
        self.pool = pool
        self.public_base = public_base.rstrip("/")
        self.read_timeout = read_timeout  # seconds a webhook's body may take to arrive
        self.tokens: dict[int, str] = {}
        self.rejected = 0  # refused signatures
        self._reading: dict[int, asyncio.Future[str | None]] = {}  # token reads under way, by provider id

    async def token(self, provider_id: int) -> str | None:
        """The account's auth token (None: no such provider), read once: the callbacks that arrive while it is
        being read wait for that one read (a burst after a start read it once, not once per callback)."""
        token = self.tokens.get(provider_id)
        if token is not None:
            return token
        reading = self._reading.get(provider_id)
        if reading is None:
            reading = self._reading[provider_id] = asyncio.ensure_future(self._read_token(provider_id))
        return await asyncio.shield(reading)

    async def _read_token(self, provider_id: int) -> str | None:
        try:
            token = await auth_token(self.pool, provider_id)
            if token is not None:
                self.tokens[provider_id] = token
            return token
        finally:
            del self._reading[provider_id]

    async def read(self, request: web.Request, provider_id: int) -> dict[str, str] | web.Response:
        """The webhook's form fields if its signature is the account's; else the response to answer with."""
        try:
            params = await read_form(request, timeout=self.read_timeout)
        except UnreadableBody as exc:
            reply = web.Response(status=exc.status, text=exc.message)
            reply.force_close()  # the rest of the body was not read: this connection cannot carry another request
            return reply
        token = await self.token(provider_id)
        signature = request.headers.get("X-Twilio-Signature", "")
        if token is None or not validate_twilio_signature(token, self.public_base + request.path_qs, params, signature):
            self.rejected += 1
            return web.Response(status=403, text="invalid signature")
        return params
