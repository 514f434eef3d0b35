"""Carrier and numbers: each SMSC's carrier account (Account SID, the token masked, Messaging Service SID) with a
Test connection button; its DIDs with the segments each sent in the last 60 s against its limit; buying numbers
(bought already pointed at the engine, as the API's ``add_did``) and releasing them (as ``delete_did``).

Clients come from the provider factory, numbers are recorded and removed by the store functions the API uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import quote

import aiohttp
from aiohttp import web

from engine.api import params as pp
from engine.console.views import Deps, form, phone_param, render, see_other
from engine.errors import EngineError, InvalidInput
from engine.phone import to_e164
from engine.providers.factory import carrier_client
from engine.providers.twilio import TwilioClient, inbound_webhook_url
from engine.store import carousel as numbers
from engine.store import console as store

__all__ = ["CarrierPages"]

DID_PAGE: Final = 100
SEARCH_RESULTS: Final = 20


class CarrierPages:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/carrier", self.list, name="carrier"),
            web.get("/carrier/{smsc}", self.detail, name="carrier-smsc"),
            web.post("/carrier/{smsc}/test", self.test, name="carrier-test"),
            web.post("/carrier/{smsc}/search", self.search, name="carrier-search"),
            web.post("/carrier/{smsc}/buy", self.buy, name="carrier-buy"),
            web.post("/carrier/{smsc}/release", self.release, name="carrier-release"),
        ]

    async def _smsc(self, request: web.Request) -> store.Smsc:
        try:
            return await store.smsc(self.deps.pool, request.match_info["smsc"])
        except EngineError:
            raise web.HTTPNotFound(text="no such SMSC") from None

    @asynccontextmanager
    async def _client(self, smsc: store.Smsc) -> AsyncIterator[TwilioClient]:
        if smsc.kind is None or smsc.account_sid is None:
            raise InvalidInput("account", f"SMSC {smsc.name!r} has no carrier account (engine provider add)")
        async with aiohttp.ClientSession() as session:
            yield carrier_client(session, kind=smsc.kind, account_sid=smsc.account_sid, auth_token=smsc.auth_token,
                                 base_url=smsc.base_url, messaging_service_sid=smsc.messaging_service_sid,
                                 timeout=self.deps.settings.request_timeout)

    def _inbound_url(self, smsc: store.Smsc) -> str | None:
        if smsc.provider_id is None:
            return None
        return inbound_webhook_url(self.deps.settings.callback_base, smsc.provider_id)

    async def list(self, request: web.Request) -> web.Response:
        smscs = await store.smscs(self.deps.pool)
        return await render(request, "carrier.html", {"smscs": smscs}, nav="carrier")

    async def detail(self, request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
        smsc = await self._smsc(request)
        dids, cursor = await store.did_page(self.deps.pool, smsc.id, after=request.query.get("after") or None,
                                            limit=DID_PAGE)
        return await render(request, "carrier_smsc.html", {
            "smsc": smsc, "dids": dids, "cursor": cursor, "error": error, "inbound_url": self._inbound_url(smsc),
        }, nav="carrier", status=status)

    async def test(self, request: web.Request) -> web.Response:
        """Call the carrier's account endpoint with the stored credentials (``engine provider test``)."""
        smsc = await self._smsc(request)
        try:
            async with self._client(smsc) as client:
                ok, detail = await client.fetch_account()
        except EngineError as exc:
            ok, detail = False, str(exc)
        return await render(request, "_carrier_test.html", {
            "ok": ok, "detail": detail, "smsc": smsc, "inbound_url": self._inbound_url(smsc)})

    async def search(self, request: web.Request) -> web.Response:
        smsc = await self._smsc(request)
        fields = form(request)
        found: list[str] = []
        error = None
        try:
            country = pp.parse_country(fields)
            contains = pp.parse_number_fragment(fields, "contains")  # the API's find_did rule
            async with self._client(smsc) as client:
                found = await client.search_numbers(country, contains, limit=SEARCH_RESULTS)
        except EngineError as exc:
            error = str(exc)
        return await render(request, "_carrier_search.html", {"smsc": smsc, "found": found, "error": error})

    async def buy(self, request: web.Request) -> web.StreamResponse:
        """Buy a number with its SmsUrl at the engine (in the purchase itself), then add it to the SMSC; released
        again if another SMSC recorded it meanwhile."""
        smsc = await self._smsc(request)
        try:
            number = phone_param(form(request).get("number", ""), name="number")
            owner = await numbers.did_smsc(self.deps.pool, number)
            if owner is not None:
                raise InvalidInput("number", f"{number} is already a DID" + ("" if owner == smsc.id else
                                                                             " of another SMSC"))
            async with self._client(smsc) as client:
                bought = await client.buy_number(number, sms_url=self._inbound_url(smsc))
                bought = to_e164(bought) or bought
                if not await numbers.record_did(self.deps.pool, smsc.id, bought):
                    await client.release_number(bought)
                    raise InvalidInput("number", f"{bought} is in use by another SMSC")
        except EngineError as exc:  # (a carrier's refusal, ProviderError, included)
            return await self.detail(request, status=400, error=str(exc))
        return see_other(request, f"/console/carrier/{quote(smsc.name)}?done=bought")

    async def release(self, request: web.Request) -> web.StreamResponse:
        """Release the number on the carrier, then remove it (kept when the carrier refuses)."""
        smsc = await self._smsc(request)
        try:
            number = phone_param(form(request).get("number", ""), name="number")
            async with self._client(smsc) as client:
                removed = await numbers.remove_did(self.deps.pool, smsc.id, number,
                                                   lambda: client.release_number(number))
            if not removed:
                raise InvalidInput("number", f"{number} is not a DID of {smsc.name}")
        except EngineError as exc:
            return await self.detail(request, status=400, error=str(exc))
        return see_other(request, f"/console/carrier/{quote(smsc.name)}?done=released")
