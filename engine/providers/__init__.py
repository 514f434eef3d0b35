"""Carrier providers: one module per carrier, all speaking through these value types.

A provider's ``send`` never raises for carrier or network trouble; it classifies the
outcome into a :class:`SendResult` so the dispatcher can decide (retry, fail, unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from engine.frozen import fast_init

if TYPE_CHECKING:
    from engine.providers.http1 import InFlight


@fast_init
@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One message to hand to a carrier."""

    message_id: int
    to: str  # E.164 recipient
    from_: str | None  # the DID chosen by the throttle (E.164), or None to let a messaging service pick
    body: str
    status_callback: str | None  # absolute URL the carrier POSTs status updates to
    validity_period: int | None = None  # seconds the carrier may still queue it (Twilio ValidityPeriod, 1-36000)


@fast_init
@dataclass(frozen=True, slots=True)
class SendResult:
    """What came of one create request.

    ok          -- the carrier accepted the message (provider_message_id set)
    retryable   -- not accepted, but trying again later may work (429, 5xx, network)
    ambiguous   -- the request may have reached the carrier (timeout after sending);
                   retrying could send the message twice
    """

    ok: bool
    provider_message_id: str | None = None
    provider_status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    retryable: bool = False
    ambiguous: bool = False
    retry_after: float | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class IncomingNumber:
    """One of the account's phone numbers as the carrier knows it, with where its incoming texts go."""

    sid: str  # the carrier's id for the number (Twilio: "PN…")
    phone_number: str  # E.164
    sms_url: str | None  # the webhook the carrier calls for each incoming text; None when unset
    sms_method: str  # "POST" or "GET"


class Provider(Protocol):
    """A carrier client bound to one account.

    ``begin_send`` is the task-free way of the hot path: it writes the request at once when it can and returns the
    request in flight (its ``answer`` future is done once the outcome is known, then ``finish_send`` classifies it
    exactly as ``send`` would have); None when it cannot (nothing written: use ``send``).
    """

    async def send(self, request: OutboundRequest) -> SendResult: ...

    def begin_send(self, request: OutboundRequest) -> InFlight | None: ...

    def finish_send(self, flight: InFlight) -> SendResult: ...

    async def close(self) -> None: ...
