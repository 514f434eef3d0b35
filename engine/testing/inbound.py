"""Incoming texts (MOs): the fake carrier sends one to the ``SmsUrl`` of the number it was sent to, as Twilio does.

The form is Twilio's inbound form (MessageSid, AccountSid, From, To, Body, NumSegments, NumMedia,
SmsStatus, ApiVersion, …), signed with the number's account token over the SmsUrl (``X-Twilio-Signature``)
and carrying an ``I-Twilio-Idempotency-Token``. Sending the same MessageSid again is a retried webhook: the
same form, the same token. One attempt per send: whatever the receiver answers is reported, not retried.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from engine.providers.twilio import twilio_signature
from engine.providers.twilio_wire import API_VERSION, FORM_CONTENT_TYPE
from engine.segment import analyze
from engine.testing.numbers import NumberMarket

__all__ = ["INBOUND_TIMEOUT", "InboundSender", "MoDelivery", "NoSmsUrl"]

INBOUND_TIMEOUT: Final = 15.0  # seconds Twilio waits for the answer to an inbound webhook


class NoSmsUrl(LookupError):
    """The number has no SmsUrl (or is not a number of any account): there is nowhere to send its texts."""


@dataclass(frozen=True, slots=True)
class MoDelivery:
    """One inbound webhook sent: the message's sid and the HTTP status the receiver answered.

    ``status`` is None when the receiver could not be reached or did not answer in time (``error`` says why).
    """

    message_sid: str
    status: int | None
    error: str | None = None


def idempotency_token(account: str, message_sid: str) -> str:
    """The ``I-Twilio-Idempotency-Token`` of every attempt to deliver one message: the same on a retry."""
    return hashlib.sha256(f"{account}:{message_sid}".encode()).hexdigest()[:32]


class InboundSender:
    """Sends MOs to the numbers' SmsUrls over its own HTTP session (opened in :meth:`start`)."""

    def __init__(self, market: NumberMarket, tokens: Mapping[str, str], rng: random.Random) -> None:
        self.market = market
        self.tokens = tokens
        self._rng = rng
        self._session: aiohttp.ClientSession | None = None
        self.sent: list[MoDelivery] = []

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=INBOUND_TIMEOUT))

    async def stop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def new_sid(self) -> str:
        return f"SM{self._rng.getrandbits(128):032x}"

    async def send(self, from_: str, to: str, body: str, *, message_sid: str | None = None) -> MoDelivery:
        """Text *body* from *from_* to the number *to*: one signed webhook to its SmsUrl.

        :class:`NoSmsUrl` when *to* has none. Reusing *message_sid* re-sends that message (a retried webhook).
        """
        target = self.market.webhook(to)
        if target is None:
            raise NoSmsUrl(f"{to} has no SmsUrl")
        session = self._session
        if session is None:
            raise RuntimeError("InboundSender is not started")
        account, url, method = target
        sid = message_sid or self.new_sid()
        form = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": str(analyze(body).segments),
            "MessageSid": sid,
            "AccountSid": account,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        headers = {
            "I-Twilio-Idempotency-Token": idempotency_token(account, sid),
            "User-Agent": "TwilioProxy/1.1",
        }
        token = self.tokens[account]
        if method == "GET":  # the form goes in the query string, and the signature covers the whole URL
            url = url + ("&" if "?" in url else "?") + urlencode(form)
            headers["X-Twilio-Signature"] = twilio_signature(token, url, {})
            request = session.get(URL(url, encoded=True), headers=headers)
        else:
            headers["X-Twilio-Signature"] = twilio_signature(token, url, form)
            headers["Content-Type"] = FORM_CONTENT_TYPE
            request = session.post(URL(url, encoded=True), data=urlencode(form).encode(), headers=headers)
        try:
            async with request as resp:
                await resp.read()
                delivery = MoDelivery(sid, resp.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc)
            delivery = MoDelivery(sid, None, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)
        self.sent.append(delivery)
        return delivery
