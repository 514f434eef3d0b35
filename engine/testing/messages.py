"""The Messages API of the fake: create a message with Twilio's validation, error codes and reply.

An accepted message gets its fate at once (delivered, or with ``failure_rate`` one of Twilio's failure
outcomes), is recorded in the ledger, and its status callbacks are scheduled. The request path is kept
lean: the benchmarks push tens of thousands of sends a second through it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping
from email.utils import formatdate
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from engine.providers.twilio import API_VERSION
from engine.testing.accounts import ACCOUNT_PATH, account_of
from engine.testing.callbacks import CallbackSender
from engine.testing.faults import Faults
from engine.testing.records import AcceptedRecord, Ledger
from engine.testing.services import MessagingServices
from engine.testing.wire import E164, error, json_reply, read_form

__all__ = ["FAILURE_OUTCOMES", "MAX_BODY_CHARS", "NOT_MOBILE_NUMBER", "UNSUBSCRIBED_NUMBER", "MessagesApi", "validate"]

MAX_BODY_CHARS: Final = 1600
# Twilio's magic test numbers, kept so tests can provoke these permanent errors on demand.
NOT_MOBILE_NUMBER: Final = "+15005550009"
UNSUBSCRIBED_NUMBER: Final = "+15005550004"
# How accepted-but-failed messages end, with the ErrorCode Twilio reports for them.
FAILURE_OUTCOMES: Final[tuple[tuple[str, int], ...]] = (
    ("undelivered", 30003),  # unreachable destination handset
    ("undelivered", 30005),  # unknown destination handset
    ("undelivered", 30006),  # landline or unreachable carrier
    ("failed", 30008),  # unknown error
)
CREATE_ROUTE: Final = "messages.create"


def validate(form: Mapping[str, str]) -> web.Response | None:
    """Twilio's create-message validation, with its error codes and wording; None when the form is good."""
    to = form.get("To")
    if not to:
        return error(400, 21604, "A 'To' phone number is required.")
    if not E164.fullmatch(to):
        return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
    body = form.get("Body")
    if not body:
        return error(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    callback = form.get("StatusCallback")
    if callback and not callback.startswith(("http://", "https://")):
        return error(400, 21609, f"The StatusCallback URL {callback} is not a valid URL.")
    validity = form.get("ValidityPeriod")
    if validity is not None and (not validity.isascii() or not validity.isdigit() or not 1 <= int(validity) <= 36000):
        return error(400, 21624, "Validity period can only be set to integers between 1 and 36,000 seconds "
                     "(10 hours max).")
    if to == NOT_MOBILE_NUMBER:
        return error(400, 21614, f"'To' number {to} is not a valid mobile number")
    if to == UNSUBSCRIBED_NUMBER:
        return error(400, 21610, "Attempt to send to unsubscribed recipient")
    return None


class MessagesApi:
    """``POST /2010-04-01/Accounts/{sid}/Messages.json``, its fault gate and its outcomes."""

    def __init__(
        self,
        ledger: Ledger,
        faults: Faults,
        callbacks: CallbackSender,
        stopping: asyncio.Event,
        rng: random.Random,
        *,
        failure_rate: float,
        services: MessagingServices | None = None,
    ) -> None:
        self.services = services if services is not None else MessagingServices()
        self.forced: deque[tuple[str, int]] = deque()  # outcomes of the next accepted messages (refuse_next)
        self.ledger = ledger
        self.faults = faults
        self.callbacks = callbacks
        self.stopping = stopping
        self.failure_rate = failure_rate
        self._rng = rng
        self._date_second = -1
        self._date_text = ""

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{ACCOUNT_PATH}/Messages.json", self.create, name=CREATE_ROUTE)]

    @web.middleware
    async def gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """In front of everything for create requests: an injected failure answers first (even before
        authentication), and every create request not answered 201 counts as rejected."""
        if request.match_info.route.name != CREATE_ROUTE:
            return await handler(request)
        failure = self.faults.failure()
        response = failure if failure is not None else await handler(request)
        if response.status != 201:
            self.ledger.rejected += 1
        return response

    async def create(self, request: web.Request) -> web.Response:
        """Accept or refuse one message, exactly as Twilio would answer."""
        account = account_of(request)
        form = await read_form(request)
        # A hang holds the reply after the whole request arrived, like a slow carrier: the message is
        # still created afterwards even if the client gave up, which is what makes timeouts ambiguous.
        if (self.faults.hangs_pending and await self.faults.wait_hang(self.stopping)) or self.stopping.is_set():
            return error(503, 20503, "Service Unavailable")
        invalid = validate(form)
        if invalid is not None:
            return invalid

        now = time.time()
        sid = f"SM{self._rng.getrandbits(128):032x}"
        final_status, error_code = self._outcome()
        from_ = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        if from_ is None and service is not None:  # the service picks the sender from its pool
            picked = self.services.pick(account, service)
            if isinstance(picked, web.Response):
                return picked
            from_ = picked
        callback = form.get("StatusCallback") or None
        to = form["To"]
        body = form["Body"]
        validity = int(form["ValidityPeriod"]) if form.get("ValidityPeriod") else None
        record = AcceptedRecord(now, sid, from_, to, body, service, callback, final_status, error_code, validity)
        self.ledger.records.append(record)
        self.ledger.accepted += 1
        self.callbacks.schedule(record, account)
        date = self._date(now)
        return json_reply({
            "account_sid": account,
            "api_version": API_VERSION,
            "body": body,
            "date_created": date,
            "date_sent": None,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
        }, 201)

    def _outcome(self) -> tuple[str, int | None]:
        if self.forced:
            return self.forced.popleft()
        if self.failure_rate and self._rng.random() < self.failure_rate:
            return self._rng.choice(FAILURE_OUTCOMES)
        return "delivered", None

    def _date(self, now: float) -> str:
        """RFC 2822 date as Twilio formats it, cached per second (one formatdate per second, not per send)."""
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date_text = formatdate(second, usegmt=False).replace("-0000", "+0000")
        return self._date_text
