"""Pacing of sender numbers (pure, clock injected): token buckets, DID choice, pool/account limits, one scheduler."""

from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter
from engine.throttle.scheduler import ACCOUNT_GUARD, ACCOUNT_WINDOW, Decision, Gate, Scheduler, UnknownPool

__all__ = [
    "ACCOUNT_GUARD",
    "ACCOUNT_WINDOW",
    "DEFAULT_GUARD",
    "DEFAULT_WINDOW",
    "Decision",
    "DidLimiter",
    "Gate",
    "Scheduler",
    "UnknownPool",
]
