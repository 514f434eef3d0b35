"""The API's number calls (``dids``, ``find_did``, ``add_did``, ``delete_did``): an application's sender numbers,
searched for, bought and released on its carrier account. A number is bought already pointed at the engine (its
SmsUrl in the purchase request itself), so it can receive texts the moment it is added."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from engine.api import params as pp
from engine.config import Settings
from engine.errors import Conflict, InvalidInput, ProviderError
from engine.phone import to_e164
from engine.policy import senders
from engine.policy.senders import SENDER_TYPES
from engine.providers.factory import account_client
from engine.providers.twilio import TwilioClient, inbound_webhook_url
from engine.providers.twilio_numbers import NUMBER_KINDS
from engine.store import carousel as store
from engine.store.database import Pool

__all__ = ["NumbersApi", "carrier_status", "did_text", "smsc_of"]

Reply = dict[str, Any]


def smsc_of(app: store.ApiApp) -> int:
    """The app's SMSC: 409 for an application without one."""
    if app.smsc_id is None:
        raise Conflict("the application has no SMSC")
    return app.smsc_id


def did_text(e164: str) -> str:
    """DIDs go out as E.164 digits without the '+'."""
    return e164.removeprefix("+")


def _search_kinds(wanted: str | None) -> tuple[str, ...]:
    """find_did's ``type``: which of Twilio's AvailablePhoneNumbers lists to search (default both)."""
    if wanted is None:
        return NUMBER_KINDS
    if wanted in ("long_code", "local"):
        return ("Local",)
    if wanted == "toll_free":
        return ("TollFree",)
    raise InvalidInput("type", "is long_code or toll_free")


def _buy_type(wanted: str | None, number: str | None) -> str:
    """add_did's sender type: what *number* is (a toll-free number is toll_free), or *wanted* (default long_code);
    short codes and sender IDs are not bought through the API."""
    if wanted is not None and wanted not in SENDER_TYPES:
        raise InvalidInput("type", f"is one of {', '.join(SENDER_TYPES)}")
    if wanted in ("short_code", "alphanumeric"):
        raise InvalidInput("type", "short codes and sender IDs come from the carrier, not a purchase: add them with "
                                   "`engine did add --type " + wanted + "`")
    if number is None:
        return wanted or "long_code"
    try:
        return senders.sender(number, wanted)[1]
    except senders.SenderError as exc:
        raise InvalidInput(exc.field, str(exc)) from None


def carrier_status(exc: ProviderError) -> int:
    """What a carrier's refusal means for our caller.

    The carrier turned down what was asked (no such number, none available in that country, a
    number it will not sell): 422, the caller can change the request. The carrier failed, was
    unreachable, or rejected our own credentials: 502, nothing the caller can fix.
    """
    if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403):
        return 422
    return 502


class NumbersApi:
    """The number calls of one API server."""

    def __init__(self, pool: Pool, settings: Callable[[], Settings]) -> None:
        self.pool = pool
        self._settings = settings  # the server's, read at each call: its base URL is known once it listens
        self.calls: dict[str, Callable[[store.ApiApp, pp.Params], Awaitable[Reply]]] = {
            "dids": self.dids, "find_did": self.find_did, "add_did": self.add_did, "delete_did": self.delete_did,
        }

    @asynccontextmanager
    async def _carrier(self, app: store.ApiApp) -> AsyncIterator[TwilioClient]:
        """A client for the app's carrier account (one short-lived HTTP session per call)."""
        account = app.provider
        if account is None:
            raise Conflict("the application has no carrier account (engine provider add)")
        async with aiohttp.ClientSession() as session:
            yield account_client(session, account, self._settings().request_timeout)

    async def dids(self, app: store.ApiApp, p: pp.Params) -> Reply:
        numbers = await store.smsc_dids(self.pool, smsc_of(app))
        return {"dids": ",".join(did_text(n) for n in numbers)}

    async def find_did(self, app: store.ApiApp, p: pp.Params) -> Reply:
        """Numbers for sale: local ones and toll-free ones (``type`` long_code or toll_free narrows it)."""
        fragment = pp.parse_number_fragment(p)
        country = pp.parse_country(p)
        kinds = _search_kinds(pp.optional(p, "type"))
        numbers: list[str] = []
        async with self._carrier(app) as carrier:
            for kind in kinds:
                numbers += await carrier.search_numbers(country, fragment, kind=kind)
        return {"dids": ",".join(did_text(n) for n in numbers)}

    @staticmethod
    def _did_number(raw: str, country: str) -> str:
        number = to_e164(raw, country)
        if number is None:
            raise InvalidInput("number", f"{raw!r} is not a valid {country} phone number")
        return number

    def _inbound_url(self, app: store.ApiApp) -> str | None:
        """Where the app's carrier account sends incoming texts: the SmsUrl of the numbers it buys."""
        if app.provider is None:
            return None
        return inbound_webhook_url(self._settings().callback_base, app.provider.id)

    async def _pick_number(self, carrier: TwilioClient, country: str, kind: str) -> str:
        for candidate in await carrier.search_numbers(country, None, limit=5, kind=kind):
            if await store.did_smsc(self.pool, candidate) is None:
                return candidate
        what = "toll-free numbers" if kind == "TollFree" else "numbers"
        raise ProviderError(f"no {country} {what} available", status=404)

    async def add_did(self, app: store.ApiApp, p: pp.Params) -> Reply:
        """Buy a number already pointed at the engine (SmsUrl in the purchase request itself: bought and pointed,
        or neither) and add it to the SMSC; released again if another SMSC got it meanwhile. A number the SMSC
        already has is answered as is (``engine provider sync`` re-points numbers). ``type`` (long_code, the
        default, or toll_free) says what to buy when no number is given, and sets the DID's default pace."""
        smsc = smsc_of(app)
        country = pp.parse_country(p)
        raw = pp.optional(p, "number")
        wanted = pp.optional(p, "type")
        number = None if raw is None else self._did_number(raw, country)
        kind = _buy_type(wanted, number)
        if number is not None:
            owner = await store.did_smsc(self.pool, number)
            if owner == smsc:
                return {"did": did_text(number)}  # already ours: nothing to buy
            if owner is not None:
                raise InvalidInput("number", f"{number} is in use by another SMSC")
        async with self._carrier(app) as carrier:
            if number is None:
                number = await self._pick_number(carrier, country, "TollFree" if kind == "toll_free" else "Local")
            bought = await carrier.buy_number(number, sms_url=self._inbound_url(app))
            bought = to_e164(bought) or bought
            if not await store.record_did(self.pool, smsc, bought, kind):
                await carrier.release_number(bought)
                raise InvalidInput("number", f"{bought} is in use by another SMSC")
        return {"did": did_text(bought)}

    async def delete_did(self, app: store.ApiApp, p: pp.Params) -> Reply:
        smsc = smsc_of(app)
        number = self._did_number(pp.required(p, "number"), pp.parse_country(p))
        async with self._carrier(app) as carrier:
            removed = await store.remove_did(self.pool, smsc, number, lambda: carrier.release_number(number))
        if not removed:
            raise InvalidInput("number", f"{number} is not a DID of this application")
        return {}
