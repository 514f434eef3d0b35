"""Messaging Services of the fake: a sender pool per service, from which a message sent with a MessagingServiceSid
and no From gets its sender (in turn, like Twilio spreading traffic over the pool).

Twilio's errors when it cannot: 21701 "The Messaging Service does not exist" (or belongs to another account), 21704
"The Messaging Service contains no phone numbers".
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from engine.testing.wire import error

__all__ = ["MessagingServices"]


class MessagingServices:
    """Service SID -> (owning account, its senders), and whose turn it is in each pool."""

    def __init__(self) -> None:
        self._pools: dict[str, tuple[str, list[str]]] = {}
        self._turn: dict[str, int] = {}

    def add(self, sid: str, account: str, senders: Iterable[str]) -> None:
        """Create (or replace) service *sid* of *account* with these senders."""
        self._pools[sid] = (account, list(senders))
        self._turn[sid] = 0

    def senders(self, sid: str) -> list[str]:
        return list(self._pools.get(sid, ("", []))[1])

    def pick(self, account: str, sid: str) -> str | web.Response:
        """The sender for the next message of *account* through service *sid*, or Twilio's error reply."""
        entry = self._pools.get(sid)
        if entry is None or entry[0] != account:
            return error(400, 21701, f"The Messaging Service {sid} does not exist")
        pool = entry[1]
        if not pool:
            return error(400, 21704, "The Messaging Service contains no phone numbers")
        turn = self._turn[sid]
        self._turn[sid] = (turn + 1) % len(pool)
        return pool[turn]

    def reset(self) -> None:
        """Forget whose turn it is (the services stay, like numbers)."""
        self._turn = dict.fromkeys(self._pools, 0)
