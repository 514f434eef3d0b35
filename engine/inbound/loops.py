"""Auto-reply loop detection for one (phone, app): a pure state machine over a compact, storable state.

A vacation auto-responder (or another application) answering each of our automatic replies would
ping-pong forever. The rule (SPEC §2.6, §4): more than ``max_replies`` automatic replies (module
texts and app replies) within ``window_seconds``, or the same MO body ``max_repeats`` times in a row,
stops automatic replies to the phone for ``cooldown_seconds`` and fires ``auto_reply_loop`` once for
that cool-down. The first opt-out confirmation and the first HELP answer in a cool-down are never
suppressed (STOP and HELP must always be answered); the second of each is.

Usage, per (phone, app), with the state loaded from and saved to its row in the same transaction:

* every MO: ``verdict = on_mo(state, body, now, settings)`` → save ``verdict.state``; fire the event
  if ``verdict.fire_loop_event``;
* before each automatic reply: ``decision = may_reply(state, kind, now, settings)`` → save
  ``decision.state``; send only if ``decision.allowed``; fire the event if ``decision.fire_loop_event``.
  An allowed reply is counted at once, so call it when the reply is about to be queued.

Decisions:

* The (N+1)-th reply within the window is the one that starts the cool-down, and it is suppressed
  (unless it is the first opt-out confirmation or HELP answer of the cool-down): at most N automatic
  replies reach the phone in any window, then silence.
* Every allowed reply counts toward N, the exceptions included (they are automatic replies too).
* A reply at time *s* counts at time *x* while ``s + window_seconds > x`` (the window ``[s, s + window)``,
  as in `engine.throttle.limiter`).
* "In a row" means consecutive MOs of the phone with the same body (whitespace runs collapsed,
  otherwise exact), each at most ``repeat_gap_seconds`` after the previous one (default 10 min; set
  ``math.inf`` for no gap limit): a loop is fast, while a person answering "Yes" to five questions
  over a day is not a loop. The streak is not reset by a cool-down, so a sender still repeating
  when the cool-down ends starts the next one at once.
* The loop event fires exactly when a cool-down starts, so at most once per cool-down; a cool-down
  is never extended by traffic during it, and the exceptions' "first" flags reset with each one.
* ``cooldown_seconds >= window_seconds`` is required: the replies that triggered a cool-down have
  left the window when it ends, so "at most N per window" holds across cool-downs too.
* Times are plain floats (seconds since the epoch: the state is shared by processes through
  Postgres). A clock a little behind the stored times is tolerated; nothing assumes order.

The state keeps at most ``max_replies`` reply times, one 64-bit body fingerprint (a Postgres
bigint), and a few scalars.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Final, Literal, assert_never

__all__ = [
    "DEFAULT_LOOP_SETTINGS",
    "LoopSettings",
    "LoopState",
    "MoVerdict",
    "ReplyDecision",
    "ReplyKind",
    "body_fingerprint",
    "in_cooldown",
    "may_reply",
    "on_mo",
]

ReplyKind = Literal["optout_confirmation", "help", "auto"]


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """Thresholds of loop detection (an app may override them)."""

    max_replies: int = 10  # N automatic replies allowed …
    window_seconds: float = 60.0  # … in any window of T seconds
    max_repeats: int = 5  # K identical MOs in a row start a cool-down
    cooldown_seconds: float = 3600.0  # how long automatic replies stop
    repeat_gap_seconds: float = 600.0  # identical MOs further apart than this are not "in a row"

    def __post_init__(self) -> None:
        if self.max_replies < 1:
            raise ValueError("max_replies must be >= 1")
        if self.max_repeats < 2:
            raise ValueError("max_repeats must be >= 2")
        if not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ValueError("window_seconds must be a positive number")
        if not (math.isfinite(self.cooldown_seconds) and self.cooldown_seconds >= self.window_seconds):
            raise ValueError("cooldown_seconds must be a number >= window_seconds")
        if not self.repeat_gap_seconds > 0:  # also rejects NaN; math.inf is allowed
            raise ValueError("repeat_gap_seconds must be > 0")


DEFAULT_LOOP_SETTINGS: Final = LoopSettings()


@dataclass(frozen=True, slots=True)
class LoopState:
    """What loop detection remembers about one (phone, app); the initial state is ``LoopState()``.

    Every field is a plain value with a Postgres column type: float8[] (or timestamptz[]), bigint,
    timestamptz, integer, boolean.
    """

    reply_times: tuple[float, ...] = ()  # allowed replies still in the window, the last max_replies at most
    last_body: int | None = None  # body_fingerprint of the last MO
    last_mo_at: float | None = None
    repeats: int = 0  # length of the current streak of identical MOs, capped at max_repeats
    cooldown_until: float | None = None  # automatic replies stop until then
    optout_sent: bool = False  # the opt-out confirmation of this cool-down was sent
    help_sent: bool = False  # the HELP answer of this cool-down was sent


@dataclass(frozen=True, slots=True)
class MoVerdict:
    """The state after an MO, and whether this MO started a cool-down (fire ``auto_reply_loop``)."""

    state: LoopState
    fire_loop_event: bool


@dataclass(frozen=True, slots=True)
class ReplyDecision:
    """Whether an automatic reply may be sent, whether to fire ``auto_reply_loop``, and the state after it."""

    allowed: bool
    fire_loop_event: bool
    state: LoopState


def body_fingerprint(body: str) -> int:
    """A stable signed 64-bit digest of an MO body (whitespace runs collapsed), stored instead of the body."""
    text = " ".join(body.split())
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def in_cooldown(state: LoopState, now: float) -> bool:
    """Whether automatic replies to the phone are stopped at `now`."""
    return state.cooldown_until is not None and now < state.cooldown_until


def _settle(state: LoopState, now: float, settings: LoopSettings) -> LoopState:
    """End a cool-down that is over and forget replies that left the window."""
    if state.cooldown_until is not None and not now < state.cooldown_until:
        state = replace(state, cooldown_until=None, optout_sent=False, help_sent=False)
    window = settings.window_seconds
    kept = tuple(t for t in state.reply_times if t + window > now)[-settings.max_replies :]
    if kept != state.reply_times:
        state = replace(state, reply_times=kept)
    return state


def _start_cooldown(state: LoopState, now: float, settings: LoopSettings) -> LoopState:
    # The exceptions' flags are already clear: only a cool-down sets them, and `_settle` clears them when it ends.
    return replace(state, cooldown_until=now + settings.cooldown_seconds)


def on_mo(state: LoopState, body: str, now: float, settings: LoopSettings = DEFAULT_LOOP_SETTINGS) -> MoVerdict:
    """Record an MO from the phone; K identical bodies in a row start a cool-down (and fire the event once)."""
    state = _settle(state, now, settings)
    fingerprint = body_fingerprint(body)
    same = (
        state.last_body == fingerprint
        and state.last_mo_at is not None
        and now - state.last_mo_at <= settings.repeat_gap_seconds
    )
    repeats = min(state.repeats + 1, settings.max_repeats) if same else 1
    state = replace(state, last_body=fingerprint, last_mo_at=now, repeats=repeats)
    if repeats >= settings.max_repeats and not in_cooldown(state, now):
        return MoVerdict(_start_cooldown(state, now, settings), fire_loop_event=True)
    return MoVerdict(state, fire_loop_event=False)


def may_reply(
    state: LoopState, kind: ReplyKind, now: float, settings: LoopSettings = DEFAULT_LOOP_SETTINGS
) -> ReplyDecision:
    """Decide one automatic reply of `kind` at `now`, counting it when allowed.

    The reply that would be the (N+1)-th in the window starts a cool-down (the event fires); during a
    cool-down only its first ``optout_confirmation`` and its first ``help`` answer are allowed.
    """
    state = _settle(state, now, settings)
    fire = False
    if not in_cooldown(state, now) and len(state.reply_times) >= settings.max_replies:
        state = _start_cooldown(state, now, settings)
        fire = True
    if not in_cooldown(state, now):
        allowed = True
    elif kind == "optout_confirmation":
        allowed = not state.optout_sent
        state = replace(state, optout_sent=True)
    elif kind == "help":
        allowed = not state.help_sent
        state = replace(state, help_sent=True)
    elif kind == "auto":
        allowed = False
    else:
        assert_never(kind)
    if allowed:
        state = replace(state, reply_times=(*state.reply_times, now)[-settings.max_replies :])
    return ReplyDecision(allowed, fire, state)
