"""One object per DID for what a worker knows of it: number, pool, limit, lease, hand-over and sends in flight.

Pure bookkeeping (no I/O). The scheduler paces the DIDs this book calls *usable*: enabled in the
database, leased by this worker and not being handed over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.store.topology import DidRow

__all__ = ["Did", "DidBook"]


@dataclass(slots=True)
class Did:
    """Everything this worker knows about one DID."""

    id: int
    smsc_id: int
    number: str
    limit_per_min: int
    burst: int
    sender_type: str = "long_code"
    campaign_id: int | None = None  # the 10DLC campaign (and its brand) whose caps it shares
    brand_id: int | None = None
    enabled: bool = True  # enabled in the database, as of the last topology read
    leased: bool = False  # this worker holds its lease
    releasing: bool = False  # being given back: no new sends; released once nothing of ours is in flight on it
    busy: int = 0  # sends decided on it and not yet answered

    @property
    def usable(self) -> bool:
        return self.enabled and self.leased and not self.releasing


class DidBook:
    """Every DID this worker has seen (a disabled one stays known: its in-flight sends still need its number)."""

    def __init__(self) -> None:
        self._dids: dict[int, Did] = {}

    def load(self, rows: Iterable[DidRow]) -> None:
        """The enabled DIDs as the database lists them now; any other known DID is disabled."""
        seen: set[int] = set()
        for r in rows:
            seen.add(r.id)
            did = self._dids.get(r.id)
            if did is None:
                self._dids[r.id] = Did(r.id, r.smsc_id, r.number, r.limit_per_min, r.burst, r.sender_type,
                                       r.campaign_id, r.brand_id)
            else:
                did.smsc_id, did.number, did.limit_per_min, did.burst = r.smsc_id, r.number, r.limit_per_min, r.burst
                did.sender_type, did.campaign_id, did.brand_id = r.sender_type, r.campaign_id, r.brand_id
                did.enabled = True
        for did in self._dids.values():
            if did.id not in seen:
                did.enabled = False

    def get(self, did_id: int) -> Did | None:
        return self._dids.get(did_id)

    def number(self, did_id: int) -> str:
        return self._dids[did_id].number

    def enabled(self) -> list[Did]:
        return [d for d in self._dids.values() if d.enabled]

    def members(self) -> dict[int, list[int]]:
        """SMSC -> its enabled DIDs."""
        out: dict[int, list[int]] = {}
        for d in self._dids.values():
            if d.enabled:
                out.setdefault(d.smsc_id, []).append(d.id)
        return out

    def grouped(self, attr: str) -> dict[int, list[int]]:
        """Campaign ("campaign_id") or brand ("brand_id") -> its enabled DIDs."""
        out: dict[int, list[int]] = {}
        for d in self._dids.values():
            key = getattr(d, attr)
            if d.enabled and key is not None:
                out.setdefault(key, []).append(d.id)
        return out

    def usable(self) -> list[Did]:
        return [d for d in self._dids.values() if d.usable]

    def usable_ids(self) -> set[int]:
        return {d.id for d in self._dids.values() if d.usable}

    def held(self) -> set[int]:
        """DIDs whose lease we hold (usable or being handed over)."""
        return {d.id for d in self._dids.values() if d.leased}

    def releasing(self) -> set[int]:
        return {d.id for d in self._dids.values() if d.releasing}

    def set_held(self, held: set[int]) -> None:
        """We hold exactly *held* now; a DID no longer held is no longer being handed over either."""
        for did in self._dids.values():
            did.leased = did.id in held
            if not did.leased:
                did.releasing = False

    def held_elsewhere(self, did_id: int | None) -> bool:
        """An enabled DID another worker holds, or one we are handing over: its conversations are not ours now."""
        did = self._dids.get(did_id) if did_id is not None else None
        return did is not None and did.enabled and not did.usable

    def start_send(self, did_id: int) -> None:
        self._dids[did_id].busy += 1

    def end_send(self, did_id: int) -> None:
        did = self._dids[did_id]
        did.busy = max(0, did.busy - 1)
