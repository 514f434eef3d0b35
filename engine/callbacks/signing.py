"""Callback signatures: HMAC-SHA256 over "<timestamp>." + raw body, keyed with the app's callback secret.

Pure. Headers on every callback:

    X-Engine-Timestamp: 1718000000                  (unix seconds when this attempt was sent)
    X-Engine-Signature: v1=<hex HMAC-SHA256(secret, b"1718000000." + raw_body)>

Signing the timestamp with the body lets a receiver refuse replays: a captured request is valid
only within `tolerance` seconds of its timestamp (and its `event_id` tells repeats apart).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

TIMESTAMP_HEADER: Final = "X-Engine-Timestamp"
SIGNATURE_HEADER: Final = "X-Engine-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE: Final = 300  # seconds a signed request stays acceptable


def compute_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Engine-Signature value for *body* sent at *timestamp* (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def sign(secret: str, body: bytes, *, now: float) -> dict[str, str]:
    """Both signature headers for a request sent at *now*."""
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: compute_signature(secret, timestamp, body)}


def verify_signature(
    secret: str,
    timestamp: str,
    raw_body: bytes,
    signature: str,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True when *signature* is ours for (*timestamp*, *raw_body*) and the timestamp is within *tolerance*.

    *signature* may list several comma-separated values (any match passes). Constant-time comparison.
    """
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, raw_body).encode()
    return any(
        hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace"))
        for candidate in signature.split(",")
    )
