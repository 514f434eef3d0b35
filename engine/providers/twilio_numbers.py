"""Twilio REST provider, the account's own calls: credentials check and phone numbers (DIDs).

Searching, buying, pointing (SmsUrl) and releasing an account's numbers, as api.twilio.com speaks them, so they
work against the loopback fake carrier (:mod:`engine.testing`) and production alike. They are administration (the
API's number calls, the CLI, the console), kept apart from the message-sending hot path of
:class:`~engine.providers.twilio.TwilioClient`, which inherits them from :class:`TwilioNumbers` along with the
session, Basic auth header, base URL and timeouts it sets up.

What they share with sending (the API version, the form content type, error bodies) is
:mod:`engine.providers.twilio_wire`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from engine.errors import ProviderError
from engine.providers import IncomingNumber
from engine.providers.twilio_wire import API_VERSION, FORM_CONTENT_TYPE, error_fields, json_or_none

__all__ = ["NUMBER_KINDS", "TwilioNumbers"]

# AvailablePhoneNumbers subresources the engine searches: local numbers (long codes) and toll-free numbers.
NUMBER_KINDS: Final = ("Local", "TollFree")

_RESOURCE_SID: Final = re.compile(r"[A-Za-z0-9]{2,64}", re.ASCII)  # safe to put in a URL path as it is


def _incoming_number(item: object) -> IncomingNumber | None:
    """An IncomingPhoneNumber resource from the carrier's JSON; None when it lacks a usable sid or number."""
    if not isinstance(item, dict):
        return None
    sid, number = item.get("sid"), item.get("phone_number")
    if not isinstance(sid, str) or not _RESOURCE_SID.fullmatch(sid) or not isinstance(number, str) or not number:
        return None
    url, method = item.get("sms_url"), item.get("sms_method")
    return IncomingNumber(
        sid=sid,
        phone_number=number,
        sms_url=url if isinstance(url, str) and url else None,
        sms_method=method.upper() if isinstance(method, str) and method else "POST",
    )


class TwilioNumbers:
    """The account and phone-number calls of :class:`~engine.providers.twilio.TwilioClient` (its base class)."""

    __slots__ = ()

    # Set by TwilioClient.__init__.
    account_sid: str
    _account_url: URL
    _base_url: str
    _headers: Mapping[str, str]
    _session: aiohttp.ClientSession
    _timeout: aiohttp.ClientTimeout

    async def fetch_account(self) -> tuple[bool, str]:
        """Check the credentials: (True, friendly name) or (False, "<code>: <message>")."""
        headers = {"Authorization": self._headers["Authorization"], "Accept": "application/json"}
        try:
            async with self._session.get(self._account_url, headers=headers, timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc)
            return False, f"network error: {type(exc).__name__}" + (f": {detail}" if detail else "")
        if 200 <= status < 300:
            doc = json_or_none(raw)
            name = doc.get("friendly_name") if isinstance(doc, dict) else None
            return True, name if isinstance(name, str) and name else "OK"
        code, message = error_fields(raw, status)
        return False, f"{code if code is not None else status}: {message}"

    def _account_url_for(self, tail: str) -> URL:
        return URL(f"{self._base_url}/{API_VERSION}/Accounts/{self.account_sid}/{tail}")

    async def _call(
        self, method: str, url: URL, *, params: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None
    ) -> Any:
        """One account request; the decoded JSON reply (None when empty), or ProviderError."""
        headers = {"Authorization": self._headers["Authorization"], "Accept": "application/json"}
        data = None
        if form is not None:
            headers["Content-Type"] = FORM_CONTENT_TYPE
            data = urlencode(form).encode()
        if params:
            url = url.with_query(params)
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=self._timeout) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc)
            raise ProviderError(
                f"carrier unreachable: {type(exc).__name__}" + (f": {detail}" if detail else "")
            ) from None
        if not 200 <= status < 300:
            code, message = error_fields(raw, status)
            raise ProviderError(f"{code}: {message}" if code is not None else message, status=status, code=code)
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProviderError(f"HTTP {status} with an unreadable body", status=status) from None

    async def search_numbers(
        self, country: str = "US", contains: str | None = None, *, limit: int = 20, kind: str = "Local"
    ) -> list[str]:
        """Numbers available for purchase in *country* (ISO alpha-2), optionally matching *contains*: local ones,
        or toll-free ones with *kind* ``TollFree`` (Twilio's AvailablePhoneNumbers subresources).

        *contains* is Twilio's pattern: digits, letters (keypad digits) and ``*`` for any one digit.
        """
        if kind not in NUMBER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(NUMBER_KINDS)}")
        params = {"SmsEnabled": "true", "PageSize": str(limit)}
        if contains:
            params["Contains"] = contains
        url = self._account_url_for(f"AvailablePhoneNumbers/{country.upper()}/{kind}.json")
        doc = await self._call("GET", url, params=params)
        items = doc.get("available_phone_numbers") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ProviderError("reply without available_phone_numbers")
        return [n for item in items if isinstance(item, dict) and isinstance(n := item.get("phone_number"), str)]

    async def buy_number(self, number: str, *, sms_url: str | None = None) -> str:
        """Buy *number* (E.164) for this account; returns the number the carrier assigned.

        With *sms_url* the number is bought already sending its incoming texts there (SmsMethod POST), in the
        same request: either the number is bought and pointed, or neither.
        """
        form = {"PhoneNumber": number}
        if sms_url is not None:
            form |= {"SmsUrl": sms_url, "SmsMethod": "POST"}
        doc = await self._call("POST", self._account_url_for("IncomingPhoneNumbers.json"), form=form)
        bought = doc.get("phone_number") if isinstance(doc, dict) else None
        if not isinstance(bought, str) or not bought:
            raise ProviderError("purchase reply without phone_number")
        return bought

    async def _owned(self, number: str) -> list[IncomingNumber]:
        """The account's IncomingPhoneNumbers for *number* (Twilio lists at most one; an empty list if none)."""
        url = self._account_url_for("IncomingPhoneNumbers.json")
        doc = await self._call("GET", url, params={"PhoneNumber": number})
        items = doc.get("incoming_phone_numbers") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ProviderError("reply without incoming_phone_numbers")
        return [n for item in items if (n := _incoming_number(item)) is not None and n.phone_number == number]

    async def find_number(self, number: str) -> IncomingNumber | None:
        """The account's number *number* (E.164) with its sid and SMS webhook; None when the account lacks it."""
        owned = await self._owned(number)
        return owned[0] if owned else None

    async def update_sms_url(self, sid: str, sms_url: str, *, method: str = "POST") -> IncomingNumber:
        """Set the SmsUrl and SmsMethod of the account's number *sid* (its "PN…" id); returns the updated number.

        A sid the account does not have is a ProviderError with status 404.
        """
        if not _RESOURCE_SID.fullmatch(sid):
            raise ValueError(f"not a phone number sid: {sid!r}")
        url = self._account_url_for(f"IncomingPhoneNumbers/{sid}.json")
        doc = await self._call("POST", url, form={"SmsUrl": sms_url, "SmsMethod": method})
        updated = _incoming_number(doc)
        if updated is None:
            raise ProviderError("update reply without sid or phone_number")
        return updated

    async def point_number(self, number: str, sms_url: str) -> bool:
        """Make *number* send its incoming texts to *sms_url* by HTTP POST.

        True when it was changed, False when it already did. A number the account does not own is a
        ProviderError with status 404; any other carrier trouble a ProviderError as for every account call.
        """
        found = await self.find_number(number)
        if found is None:
            raise ProviderError(f"{number} is not a number of account {self.account_sid}", status=404)
        if found.sms_url == sms_url and found.sms_method == "POST":
            return False
        await self.update_sms_url(found.sid, sms_url)
        return True

    async def release_number(self, number: str) -> bool:
        """Release *number* from this account; False when the account does not own it."""
        owned = await self._owned(number)
        for item in owned:
            await self._call("DELETE", self._account_url_for(f"IncomingPhoneNumbers/{item.sid}.json"))
        return bool(owned)
