"""Pacing of sender numbers (pure, clock injected): token buckets, DID choice, one scheduler."""

from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter
from engine.throttle.scheduler import Decision, Scheduler, UnknownPool

__all__ = ["DEFAULT_GUARD", "DEFAULT_WINDOW", "Decision", "DidLimiter", "Scheduler", "UnknownPool"]
