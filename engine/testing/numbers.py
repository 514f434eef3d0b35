"""The number market: search available numbers, list, buy, fetch, update and release an account's numbers.

Twilio's AvailablePhoneNumbers and IncomingPhoneNumbers resources, enough for the API's ``find_did``,
``add_did`` and ``delete_did`` and for pointing numbers at the engine: valid NANP numbers matching Twilio's
``Contains`` pattern are offered, any valid E.164 number nobody owns can be bought, and each number keeps
its ``SmsUrl``/``SmsMethod`` (set when buying or through the update endpoint), where
:mod:`~engine.testing.inbound` sends the texts it receives.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import phonenumbers
from aiohttp import web

from engine.providers.twilio import API_VERSION
from engine.testing.accounts import ACCOUNT_PATH, account_of
from engine.testing.wire import E164, error, json_reply, not_found, read_form

__all__ = ["NANP_REGIONS", "SMS_METHODS", "TOLL_FREE_PREFIXES", "NumberMarket", "available_numbers"]

# Twilio's Contains pattern: letters stand for their phone keypad digits, '*' for any one digit.
_KEYPAD: Final = str.maketrans(
    {c: d for d, letters in zip("23456789", ("ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"), strict=True)
     for c in letters + letters.lower()}
)
_CONTAINS: Final = re.compile(r"\+?[0-9A-Za-z*]{1,16}")
NANP_REGIONS: Final = frozenset({"US", "CA"})
SMS_METHODS: Final = frozenset({"GET", "POST"})


def _fill(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "*" else ch for ch in pattern)


TOLL_FREE_PREFIXES: Final = ("800", "833", "844", "855", "866", "877", "888")


def available_numbers(
    rng: random.Random, country: str, contains: str | None, count: int, taken: Iterable[str] = (),
    *, toll_free: bool = False,
) -> list[str]:
    """Valid numbers of *country* (US or CA) matching Twilio's *contains* pattern, like its search: local ones, or
    toll-free ones (800, 833, … 888) with *toll_free*.

    A pattern starting '+' must match the start of the E.164 number; otherwise it may appear anywhere
    in the national number. Numbers in *taken* and 555 test numbers are never offered.
    """
    exclude = set(taken)
    pattern = (contains or "").translate(_KEYPAD)
    anchored = pattern.startswith("+")
    if anchored:
        pattern = pattern[1:]
        if not pattern.startswith("1"):
            return []
        pattern = pattern[1:]
    if len(pattern) > 10:
        return []
    found: list[str] = []
    for _ in range(200 * count):
        if len(found) >= count:
            break
        # Short patterns are usually area codes: put them first half of the time.
        prefer_start = anchored or (len(pattern) <= 3 and rng.random() < 0.5)
        offset = 0 if prefer_start else rng.randrange(0, 11 - len(pattern))
        template = "*" * offset + pattern + "*" * (10 - offset - len(pattern))
        if toll_free and template.startswith("***"):
            template = rng.choice(TOLL_FREE_PREFIXES) + template[3:]
        national = _fill(rng, template)
        number = "+1" + national
        if national.startswith("555") or number in exclude:
            continue
        parsed = phonenumbers.parse(number)
        is_toll_free = phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE
        if toll_free and not is_toll_free:
            continue
        if toll_free or (
            phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == country
            and not is_toll_free
        ):
            exclude.add(number)
            found.append(number)
    return found


def _number_resource(account: str, sid: str, number: str, sms: tuple[str, str]) -> dict[str, Any]:
    sms_url, sms_method = sms
    return {
        "account_sid": account,
        "sid": sid,
        "phone_number": number,
        "friendly_name": number,
        "capabilities": {"voice": True, "sms": True, "mms": True},
        "sms_url": sms_url,
        "sms_method": sms_method,
        "sms_fallback_url": "",
        "sms_fallback_method": "POST",
        "uri": f"/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{sid}.json",
    }


def _sms_settings(form: Mapping[str, str], current: tuple[str, str]) -> tuple[str, str] | web.Response:
    """The number's (SmsUrl, SmsMethod) after applying the form's, or Twilio's error for a bad one.

    Fields the form leaves out keep their value, as with Twilio; an empty SmsUrl clears it.
    """
    url = form.get("SmsUrl", current[0])
    method = form.get("SmsMethod", current[1]).upper()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return error(400, 21402, f"SmsUrl is not valid: {url}")
    if method not in SMS_METHODS:
        return error(400, 21403, "SmsMethod must be GET or POST")
    return url, method


_NO_SMS_URL: Final = ("", "POST")  # a new number's SmsUrl and SmsMethod


class NumberMarket:
    """Numbers for sale and the numbers each account bought.

    ``numbers``: number -> (account sid, PN sid); ``sms``: PN sid -> (SmsUrl, SmsMethod), for numbers whose
    SmsUrl was ever set (the others have none, method POST).
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.numbers: dict[str, tuple[str, str]] = {}
        self.sms: dict[str, tuple[str, str]] = {}

    def routes(self) -> list[web.RouteDef]:
        one = f"{ACCOUNT_PATH}/IncomingPhoneNumbers/{{sid}}.json"
        return [
            web.get(f"{ACCOUNT_PATH}/AvailablePhoneNumbers/{{country}}/Local.json", self.search),
            web.get(f"{ACCOUNT_PATH}/AvailablePhoneNumbers/{{country}}/TollFree.json", self.search_toll_free),
            web.get(f"{ACCOUNT_PATH}/IncomingPhoneNumbers.json", self.list_owned),
            web.post(f"{ACCOUNT_PATH}/IncomingPhoneNumbers.json", self.buy),
            web.get(one, self.fetch),
            web.post(one, self.update),
            web.delete(one, self.release),
        ]

    def add(self, number: str, account: str) -> str:
        """Give *account* the number (as if bought); returns its PN sid. A number owned already keeps its owner."""
        if number in self.numbers:
            owner, sid = self.numbers[number]
            if owner != account:
                raise ValueError(f"{number} belongs to another account")
            return sid
        sid = f"PN{self._rng.getrandbits(128):032x}"
        self.numbers[number] = (account, sid)
        return sid

    def sms_of(self, sid: str) -> tuple[str, str]:
        """The (SmsUrl, SmsMethod) of number *sid*; SmsUrl is '' when none is set."""
        return self.sms.get(sid, _NO_SMS_URL)

    def webhook(self, number: str) -> tuple[str, str, str] | None:
        """Where the carrier sends texts to *number*: (account sid, SmsUrl, SmsMethod); None without an SmsUrl."""
        owned = self.numbers.get(number)
        if owned is None:
            return None
        account, sid = owned
        url, method = self.sms_of(sid)
        return (account, url, method) if url else None

    def _owned_by(self, account: str, sid: str) -> str | None:
        """The number with PN sid *sid* if *account* owns it."""
        for number, (owner, owned_sid) in self.numbers.items():
            if owner == account and owned_sid == sid:
                return number
        return None

    async def search(self, request: web.Request) -> web.Response:
        """Local numbers for sale in a NANP country, optionally matching ``Contains``, at most ``PageSize`` (1-50)."""
        return await self._search(request, toll_free=False)

    async def search_toll_free(self, request: web.Request) -> web.Response:
        """Toll-free numbers for sale (AvailablePhoneNumbers/{country}/TollFree), like :meth:`search`."""
        return await self._search(request, toll_free=True)

    async def _search(self, request: web.Request, *, toll_free: bool) -> web.Response:
        country = request.match_info["country"]
        if country not in NANP_REGIONS:
            return not_found(request)
        contains = request.query.get("Contains") or None
        if contains is not None and not _CONTAINS.fullmatch(contains):
            return error(400, 21421, "Contains must be digits, letters or '*'")
        try:
            size = max(1, min(int(request.query.get("PageSize", "20")), 50))
        except ValueError:
            return error(400, 20001, "PageSize must be an integer")
        numbers = available_numbers(self._rng, country, contains, size, self.numbers, toll_free=toll_free)
        return json_reply({
            "uri": request.path_qs,
            "available_phone_numbers": [
                {"friendly_name": n, "phone_number": n, "iso_country": country,
                 "capabilities": {"voice": True, "SMS": True, "MMS": True}}
                for n in numbers
            ],
        })

    async def list_owned(self, request: web.Request) -> web.Response:
        """The caller's numbers, or only ``PhoneNumber`` when given."""
        account = account_of(request)
        wanted = request.query.get("PhoneNumber")
        items = [
            _number_resource(owner, sid, number, self.sms_of(sid))
            for number, (owner, sid) in self.numbers.items()
            if owner == account and (wanted is None or number == wanted)
        ]
        return json_reply({"incoming_phone_numbers": items})

    async def buy(self, request: web.Request) -> web.Response:
        """Buys any valid E.164 number nobody owns yet (a real carrier sells only what it has), with the
        ``SmsUrl``/``SmsMethod`` given, if any."""
        account = account_of(request)
        form = await read_form(request)
        number = form.get("PhoneNumber", "")
        if not E164.fullmatch(number):
            return error(400, 21421, "PhoneNumber is invalid.")
        if number in self.numbers:
            return error(400, 21422, "PhoneNumber requested is not available")
        sms = _sms_settings(form, _NO_SMS_URL)
        if isinstance(sms, web.Response):
            return sms
        sid = self.add(number, account)
        if sms != _NO_SMS_URL:
            self.sms[sid] = sms
        return json_reply(_number_resource(account, sid, number, sms), 201)

    async def fetch(self, request: web.Request) -> web.Response:
        """One of the caller's numbers by its PN sid."""
        account, sid = account_of(request), request.match_info["sid"]
        number = self._owned_by(account, sid)
        if number is None:
            return not_found(request)
        return json_reply(_number_resource(account, sid, number, self.sms_of(sid)))

    async def update(self, request: web.Request) -> web.Response:
        """Twilio's update of a number: here its ``SmsUrl`` and ``SmsMethod`` (other fields are ignored)."""
        account, sid = account_of(request), request.match_info["sid"]
        number = self._owned_by(account, sid)
        if number is None:
            return not_found(request)
        sms = _sms_settings(await read_form(request), self.sms_of(sid))
        if isinstance(sms, web.Response):
            return sms
        self.sms[sid] = sms
        return json_reply(_number_resource(account, sid, number, sms))

    async def release(self, request: web.Request) -> web.Response:
        """Release one of the caller's numbers by its PN sid."""
        account, sid = account_of(request), request.match_info["sid"]
        number = self._owned_by(account, sid)
        if number is None:
            return not_found(request)
        del self.numbers[number]
        self.sms.pop(sid, None)
        return web.Response(status=204)
