"""Admission policy: the checks every message passes before it is paced and sent, whichever door it came in by.

Pure functions of plain values. The dispatch stage feeds them one batched lookup per claim
(:class:`Facts`) and the time (*now*, from the worker's injected wall clock); the HTTP door calls the same
functions to give its immediate ``-2``/``-3`` answers and its 400s, so the two can never disagree. Order of
the checks, first match wins:

1. lifetime: a message past its expiry (its own, or the app's default lifetime) ends ``expired`` — except the
   engine's own STOP/HELP answers, which never expire;
2. blacklist (the phone opted out of the app) — except the engine's own STOP/HELP answers;
3. consent: a ``marketing`` message goes only to a phone subscribed to the app (else ``no_consent``);
4. flood limit (messages to the phone in the app's period) — checked on a message's first part only;
5. test numbers (555): never sent, reported delivered;
6. body limits (characters and billed segments, after the app's smart encoding);
7. destinations without Unicode support;
8. single-SMS carriers: a long body becomes ``(i/n) `` parts (one row each);
9. the duplicate window (same app, recipient and first part within the window) — except for a resend
   (``resent_from`` set: a person asked for it), which the lookup never reports as a duplicate;
10. quiet hours: a ``marketing`` message inside the recipient's local quiet hours is held (:class:`Hold`) until
    the window opens (:mod:`engine.policy.quiet_hours`), never dropped; its expiry still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from engine.frozen import fast_init
from engine.phone import is_test_number
from engine.policy.quiet_hours import Window, quiet_until
from engine.segment import UCS2, SegmentInfo, analyze, split_message

__all__ = [
    "BLACKLISTED",
    "BODY_TOO_LONG",
    "COMPLIANCE",
    "DUPLICATE",
    "EXPIRED",
    "FLOOD_LIMIT",
    "NO_CONSENT",
    "NO_UNICODE",
    "Admit",
    "AppRules",
    "BodyLimits",
    "Facts",
    "Hold",
    "Kind",
    "Prepared",
    "Reason",
    "Refuse",
    "TestDelivered",
    "Verdict",
    "body_problem",
    "decide",
    "expired",
    "prepare",
    "recipient_refusal",
]

Kind = Literal["message", "reply", "compliance"]
COMPLIANCE: Final[Kind] = "compliance"

Reason = Literal[
    "blacklisted", "flood_limit", "body_too_long", "no_unicode_support", "duplicate", "expired", "no_consent"
]
EXPIRED: Final[Reason] = "expired"
NO_CONSENT: Final[Reason] = "no_consent"
BLACKLISTED: Final[Reason] = "blacklisted"
FLOOD_LIMIT: Final[Reason] = "flood_limit"
BODY_TOO_LONG: Final[Reason] = "body_too_long"
NO_UNICODE: Final[Reason] = "no_unicode_support"
DUPLICATE: Final[Reason] = "duplicate"


@dataclass(frozen=True, slots=True)
class AppRules:
    """An application's settings that admission applies."""

    smart: bool = False
    split_mode: str = "character"
    single_sms: bool = False  # its carrier takes single SMS only: long bodies go out as `(i/n) ` parts
    flood_limit: int | None = None  # messages per phone …
    flood_seconds: float | None = None  # … per this period
    quiet_hours: bool = True  # hold marketing messages inside the recipient's local quiet hours
    quiet_window: Window | None = None  # the app's own window, which only narrows the law's (None: the law's)

    @property
    def flood_checked(self) -> bool:
        return bool(self.flood_limit and self.flood_seconds and self.flood_seconds > 0)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Engine-wide limits (settings)."""

    max_chars: int = 1600
    max_segments: int = 10
    no_unicode_prefixes: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Facts:
    """What the database knows about one claimed message (one batched lookup per claim)."""

    blacklisted: bool = False
    flood_used: int = 0  # earlier messages to the phone within the app's flood period
    duplicate: bool = False  # an earlier live message with the same first part is within the window (never a resend)
    expires_at: datetime | None = None  # its own expiry, else its due time + the app's default lifetime
    marketing: bool = False  # category 'marketing': consent and quiet hours apply
    subscribed: bool = False  # the phone is subscribed to the app (any tag)
    time_zone: str | None = None  # the recipient's stored time zone, if any


@fast_init
@dataclass(frozen=True, slots=True)
class Prepared:
    """A body as it will be billed: its segment info (after smart encoding) and its parts.

    *parts* has one element unless a single-SMS carrier needs the body cut; *head* is what the row will
    hold (the first part), which the duplicate window compares.
    """

    info: SegmentInfo
    parts: tuple[str, ...]

    @property
    def head(self) -> str:
        return self.parts[0]

    @property
    def split(self) -> bool:
        return len(self.parts) > 1


@dataclass(frozen=True, slots=True)
class Admit:
    """Send it (after splitting, when *prepared* has several parts: the row becomes part 1)."""

    prepared: Prepared


@dataclass(frozen=True, slots=True)
class TestDelivered:
    """A 555 test number: reported delivered, never sent."""

    prepared: Prepared


@dataclass(frozen=True, slots=True)
class Refuse:
    """Not sent: the message ends failed (suppressed for a duplicate, expired past its lifetime) with *reason*;
    *detail* is for people."""

    reason: Reason
    detail: str
    prepared: Prepared | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """A marketing message inside the recipient's quiet hours: back to the queue, due again at *until*."""

    until: datetime
    prepared: Prepared


Verdict = Admit | TestDelivered | Refuse | Hold


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a message with this expiry may no longer be sent at *now* (the expiry instant itself is too late)."""
    return expires_at is not None and now >= expires_at


def prepare(body: str, rules: AppRules) -> Prepared:
    """Segment *body* with the app's smart flag, and split it when its carrier takes single SMS only."""
    info = analyze(body, smart=rules.smart)
    if rules.single_sms and info.segments > 1:
        return Prepared(info, tuple(split_message(body, rules.split_mode, smart=rules.smart)))
    return Prepared(info, (body,))


def body_problem(body: str, segments: int | None, limits: BodyLimits) -> str | None:
    """Why *body* may not be sent at all (too many characters, or *segments* billed ones), or None.

    *segments* None checks the characters only.
    """
    if len(body) > limits.max_chars:
        return f"is {len(body)} characters; at most {limits.max_chars} are allowed"
    if segments is not None and segments > limits.max_segments:
        return f"would be {segments} SMS segments; at most {limits.max_segments} are allowed"
    return None


def recipient_refusal(
    *, blacklisted: bool, flood_used: int, rules: AppRules, kind: str = "message", first_part: bool = True
) -> Reason | None:
    """Whether the recipient may get this message: blacklist first, then the app's flood limit.

    The engine's own STOP/HELP answers (kind ``compliance``) pass both. Later parts of one message were
    counted with its first part, so only the first part is checked against the flood limit.
    """
    if kind == COMPLIANCE:
        return None
    if blacklisted:
        return BLACKLISTED
    if first_part and rules.flood_checked and rules.flood_limit is not None and flood_used >= rules.flood_limit:
        return FLOOD_LIMIT
    return None


def decide(
    *,
    recipient: str,
    body: str,
    kind: str,
    first_part: bool,
    prepared: Prepared,
    facts: Facts,
    rules: AppRules,
    limits: BodyLimits,
    now: datetime,
) -> Verdict:
    """The admission verdict for one claimed message at *now* (see the module docstring for the order)."""
    compliance = kind == COMPLIANCE
    if not compliance and expired(facts.expires_at, now):
        return Refuse(EXPIRED, "the message expired before it could be sent", prepared)
    refusal = recipient_refusal(
        blacklisted=facts.blacklisted, flood_used=facts.flood_used, rules=rules, kind=kind, first_part=first_part
    )
    if refusal == BLACKLISTED:
        return Refuse(refusal, "the phone opted out of this application", prepared)
    if facts.marketing and not compliance and not facts.subscribed:
        return Refuse(NO_CONSENT, "a marketing message goes only to phones subscribed to the application", prepared)
    if refusal is not None:
        detail = f"the phone reached the app's flood limit ({rules.flood_limit} per {rules.flood_seconds:g} s)"
        return Refuse(refusal, detail, prepared)
    if is_test_number(recipient):
        return TestDelivered(prepared)
    problem = body_problem(body, prepared.info.segments, limits)
    if problem is not None:
        detail = (f"body of {len(body)} characters / {prepared.info.segments} segments is over the limit "
                  f"({limits.max_chars} / {limits.max_segments})")
        return Refuse(BODY_TOO_LONG, detail, prepared)
    no_unicode = limits.no_unicode_prefixes
    if no_unicode and prepared.info.encoding == UCS2 and recipient.startswith(no_unicode):
        return Refuse(NO_UNICODE, "no_unicode_support", prepared)
    if facts.duplicate and not compliance:
        return Refuse(DUPLICATE, "duplicate within the app's window", prepared)
    if facts.marketing and not compliance and rules.quiet_hours:
        until = quiet_until(now, recipient, stored_zone=facts.time_zone, window=rules.quiet_window)
        if until is not None:
            return Hold(until, prepared)
    return Admit(prepared)
