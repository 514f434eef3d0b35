"""Pointing a carrier account's numbers at the engine: each DID's SmsUrl becomes the engine's inbound webhook.

``engine did add`` points the numbers it adds, ``engine provider sync`` every DID of an application (and fixes
what an earlier add could not point); ``engine did remove`` clears the SmsUrl of the numbers it removes.
Numbers are independent: one that fails is reported and the others are still pointed, a few requests at a time.
Credentials the carrier refuses stop the run at once (every other number would fail the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from engine.errors import ProviderError
from engine.providers.twilio import TwilioClient

__all__ = ["POINT_CONCURRENCY", "PointReport", "point_numbers", "unpoint_numbers"]

POINT_CONCURRENCY: Final = 4  # carrier requests in flight at once (Twilio's REST API limits concurrency per account)
_CREDENTIALS_REFUSED: Final = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class PointReport:
    """What came of pointing numbers at *sms_url*: each number is in exactly one of the three."""

    sms_url: str
    pointed: tuple[str, ...] = ()  # changed now
    unchanged: tuple[str, ...] = ()  # already sent their texts to sms_url by POST
    failed: dict[str, str] = field(default_factory=dict)  # number -> the carrier's error

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_json(self) -> dict[str, object]:
        return {
            "sms_url": self.sms_url,
            "pointed": list(self.pointed),
            "unchanged": list(self.unchanged),
            "failed": dict(self.failed),
        }


async def point_numbers(
    client: TwilioClient, numbers: Iterable[str], sms_url: str, *, concurrency: int = POINT_CONCURRENCY
) -> PointReport:
    """Set the SmsUrl of each of *numbers* (E.164) on the client's account to *sms_url* (SmsMethod POST).

    Never raises for carrier trouble: a number the account does not own, or that the carrier refuses to
    update, is in ``failed`` with the reason; after the carrier refuses the credentials the remaining numbers
    are not tried and fail with that reason.
    """
    wanted = list(dict.fromkeys(numbers))  # once each, in the order given
    outcome: dict[str, bool | str] = {}
    gate = asyncio.Semaphore(max(1, concurrency))
    refused: list[str] = []  # set once the credentials were refused

    async def one(number: str) -> None:
        async with gate:
            if refused:
                outcome[number] = refused[0]
                return
            try:
                outcome[number] = await client.point_number(number, sms_url)
            except ProviderError as exc:
                outcome[number] = str(exc)
                if exc.status in _CREDENTIALS_REFUSED and not refused:
                    refused.append(f"carrier refused the credentials: {exc}")

    await asyncio.gather(*(one(n) for n in wanted))
    return _report(sms_url, wanted, outcome)


async def unpoint_numbers(
    client: TwilioClient, numbers: Iterable[str], sms_url: str, *, concurrency: int = POINT_CONCURRENCY
) -> PointReport:
    """Clear the SmsUrl of each of *numbers* that still sends its texts to *sms_url* (numbers removed from the
    engine keep their carrier account, so their texts would otherwise still come here). A number pointed
    elsewhere meanwhile, or no longer on the account, is left alone (``unchanged``); ``pointed`` holds the
    numbers cleared. Never raises for carrier trouble (``failed``, as :func:`point_numbers`)."""
    wanted = list(dict.fromkeys(numbers))
    outcome: dict[str, bool | str] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(number: str) -> None:
        async with gate:
            try:
                found = await client.find_number(number)
                if found is None or found.sms_url != sms_url:
                    outcome[number] = False
                    return
                await client.update_sms_url(found.sid, "")
                outcome[number] = True
            except ProviderError as exc:
                outcome[number] = str(exc)

    await asyncio.gather(*(one(n) for n in wanted))
    return _report(sms_url, wanted, outcome)


def _report(sms_url: str, wanted: list[str], outcome: dict[str, bool | str]) -> PointReport:
    """Each number by its outcome: True changed, False left as it was, a text the carrier's error."""
    return PointReport(
        sms_url=sms_url,
        pointed=tuple(n for n in wanted if outcome[n] is True),
        unchanged=tuple(n for n in wanted if outcome[n] is False),
        failed={n: why for n in wanted if isinstance(why := outcome[n], str)},
    )
