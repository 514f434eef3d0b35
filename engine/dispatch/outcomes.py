"""What the dispatch stages hand to the writers: engine-side status changes and callback events (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.dispatch import statuses as st

__all__ = ["Event", "Outcome", "outcome_columns"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An engine-side status change to write (its delivery report is written by the same statement)."""

    id: int
    change: st.StatusChange
    code: int | None = None
    message: str | None = None
    segments: int | None = None
    encoding: str | None = None
    reason: str | None = None  # why the engine refused it (admission), sent in the delivery report


@dataclass(frozen=True, slots=True)
class Event:
    """A callback event for an application (written to the outbox)."""

    app_id: int
    type: str
    payload: Mapping[str, str]


def outcome_columns(batch: Sequence[Outcome]) -> list[list[Any]]:
    """MARK_OUTCOME's array parameters for *batch*."""
    return [
        [o.id for o in batch],
        [o.change.state for o in batch],
        [o.change.status for o in batch],
        [o.change.rank for o in batch],
        [o.code for o in batch],
        [o.message for o in batch],
        [o.segments for o in batch],
        [o.encoding for o in batch],
        [o.reason for o in batch],
    ]
