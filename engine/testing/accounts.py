"""Carrier accounts: who may call the fake (HTTP Basic, as Twilio does), checked by ONE middleware.

Every Twilio REST resource sits under ``/2010-04-01/Accounts/{account_sid}``; the middleware answers
401 to bad credentials and 404 to another account's URL before any handler runs, so handlers only ever
see their own caller's account (:func:`account_of`). The fake's ``/_fake/...`` endpoints have no
account and are not checked.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from engine.providers.twilio import API_VERSION, basic_authorization
from engine.testing.wire import error, json_reply, not_found

__all__ = ["ACCOUNT_PATH", "DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "Accounts", "account_of", "fetch_account"]

DEFAULT_ACCOUNT_SID: Final = "ACfake" + "0" * 28  # 34 characters, like a real Account SID
DEFAULT_AUTH_TOKEN: Final = "fake-token"
ACCOUNT_PATH: Final = f"/{API_VERSION}/Accounts/{{account_sid}}"


class Accounts:
    """The accounts the fake knows (sid -> auth token) and the middleware that authenticates their calls."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self.tokens: dict[str, str] = dict(tokens)
        # Exact header value -> account sid: one dict lookup authenticates a well-formed request.
        self._by_header = {basic_authorization(sid, token): sid for sid, token in self.tokens.items()}

    def authenticate(self, header: str | None) -> str | None:
        """The account sid the Basic credentials belong to, or None."""
        if header is None:
            return None
        sid = self._by_header.get(header)
        if sid is not None:
            return sid
        # Slow path: odd scheme casing or spacing; still a constant-time token comparison.
        auth = None
        with contextlib.suppress(ValueError):
            auth = aiohttp.BasicAuth.decode(header)
        if auth is None:
            return None
        login = str(auth.login)
        token = self.tokens.get(login)
        if token is not None and hmac.compare_digest(token.encode(), str(auth.password).encode()):
            return login
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Let a request under an account's URL through only when its credentials are that account's."""
        sid = request.match_info.get("account_sid")
        if sid is None:  # not an account resource: /_fake/..., or no route at all
            return await handler(request)
        account = self.authenticate(request.headers.get("Authorization"))
        if account is None:
            return error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if account != sid:
            return not_found(request)
        return await handler(request)


def account_of(request: web.Request) -> str:
    """The caller's account: the one in the URL, which :meth:`Accounts.middleware` checked is the caller's own."""
    return request.match_info["account_sid"]


async def fetch_account(request: web.Request) -> web.Response:
    """GET the account resource (what ``TwilioClient.fetch_account`` checks credentials with)."""
    account = account_of(request)
    return json_reply({
        "sid": account,
        "friendly_name": "Fake carrier account",
        "status": "active",
        "type": "Full",
        "uri": f"/{API_VERSION}/Accounts/{account}.json",
    })
