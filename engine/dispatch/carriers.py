"""The carrier clients a worker sends through: one per SMSC's account, each behind its breaker/429 gate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from engine.dispatch.breaker import ProviderGate
from engine.providers import Provider
from engine.providers.factory import carrier_client
from engine.store.topology import ProviderRow

__all__ = ["Binding", "Carriers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Binding:
    provider_id: int
    client: Provider
    gate: ProviderGate


class Carriers:
    """SMSC -> its carrier binding. Rebinding (credentials changed) keeps each account's gate and closes the old
    HTTP sessions only after their in-flight requests have had time to finish."""

    def __init__(self, *, max_in_flight: int, request_timeout: float) -> None:
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.bindings: dict[int, Binding] = {}
        self.gates: dict[int, ProviderGate] = {}  # provider account -> breaker + 429 pause (survives rebinding)
        self.sessions: list[aiohttp.ClientSession] = []
        self._retired: list[aiohttp.ClientSession] = []  # replaced by a rebinding, closed a little later
        self._signature: tuple[ProviderRow, ...] = ()
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, smsc_id: int) -> Binding | None:
        return self.bindings.get(smsc_id)

    def __contains__(self, smsc_id: int) -> bool:
        return smsc_id in self.bindings

    def bind(self, rows: Sequence[ProviderRow]) -> None:
        """Build clients for *rows* unless they are what is bound already."""
        signature = tuple(rows)
        if signature == self._signature:
            return
        self._signature = signature
        old_sessions, self.sessions = self.sessions, []
        bindings: dict[int, Binding] = {}
        for r in rows:
            connector = aiohttp.TCPConnector(limit=self.max_in_flight, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector)
            self.sessions.append(session)
            client = carrier_client(
                session,
                kind=r.kind,
                account_sid=r.account_sid,
                auth_token=r.auth_token,
                base_url=r.base_url,
                messaging_service_sid=r.messaging_service_sid,
                timeout=self.request_timeout,
            )
            gate = self.gates.setdefault(r.provider_id, ProviderGate())
            bindings[r.smsc_id] = Binding(r.provider_id, client, gate)
        self.bindings = bindings
        for session in old_sessions:
            self._retired.append(session)
            asyncio.get_running_loop().call_later(self.request_timeout + 5, self._close_later, session)

    def _close_later(self, session: aiohttp.ClientSession) -> None:
        if session not in self._retired:
            return  # closed already, by close()
        self._retired.remove(session)
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every session, those a rebinding retired included (a worker stopping within their grace period
        must not leave them open)."""
        for session in self.sessions + self._retired:
            await session.close()
        self.sessions = []
        self._retired = []
