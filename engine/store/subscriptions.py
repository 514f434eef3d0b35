"""Subscriptions and web opt-in of the Carousel API: an app's subscribers by tag, and a phone's opt-in through a
texted code (stored hashed, valid minutes, locked after a few wrong tries)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from engine.store import carousel_queries as cq
from engine.store.carousel import ApiApp

__all__ = ["OptInResult", "confirm_opt_in", "request_opt_in", "subscribers"]


async def subscribers(pool: asyncpg.Pool, app_id: int, tags: Sequence[str], limit: int) -> list[str]:
    """Phones subscribed to the app with any of *tags* ('' = subscribed without a tag), at most *limit*."""
    return [r["phone"] for r in await pool.fetch(cq.SUBSCRIBERS, app_id, list(tags), limit)]


def _code_hash(app_id: int, phone: str, code: str) -> str:
    return hashlib.sha256(f"{app_id}:{phone}:{code}".encode()).hexdigest()


async def request_opt_in(
    pool: asyncpg.Pool, app: ApiApp, phone: str, code: str, body: str, tags: Sequence[str], valid_seconds: float
) -> int:
    """Store the (hashed) verification code for *phone* and queue *body* (which carries it); the message id.
    A new request replaces the previous code and its count of wrong tries. The text lives as long as the code: one
    that could not be sent in time is never sent late (it ends expired)."""
    expires_at = datetime.now(UTC) + timedelta(seconds=valid_seconds)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(cq.SAVE_OPTIN_CODE, app.id, phone, _code_hash(app.id, phone, code), list(tags),
                           valid_seconds)
        rows = await conn.fetch(cq.INSERT_MESSAGES, app.id, [phone], [body], None, None, False,
                                "verification", "transactional", expires_at, None)
    return int(rows[0]["id"])


@dataclass(frozen=True, slots=True)
class OptInResult:
    ok: bool
    problem: str | None = None  # why not: no code, expired, locked, wrong (with the tries left)


async def confirm_opt_in(pool: asyncpg.Pool, app_id: int, phone: str, code: str, *, max_tries: int) -> OptInResult:
    """Check *code* (in constant time) against the phone's pending one; subscribe it when right. A wrong try is
    counted (and committed) even though the call fails; after *max_tries* the code is locked."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(cq.OPTIN_CODE, app_id, phone)
        if row is None or not row["valid"]:
            return OptInResult(False, "no valid code for this phone: request a new one")
        if row["tries"] >= max_tries:
            return OptInResult(False, f"{max_tries} wrong codes: this code is locked, request a new one")
        if not hmac.compare_digest(row["code_hash"], _code_hash(app_id, phone, code)):
            tries = await conn.fetchval(cq.WRONG_OPTIN_CODE, app_id, phone)
            left = max(0, max_tries - tries)
            return OptInResult(False, f"wrong code ({left} tries left)" if left else
                               f"wrong code; {max_tries} wrong codes: this code is locked, request a new one")
        await conn.execute(cq.DROP_OPTIN_CODE, app_id, phone)
        await conn.execute(cq.WEB_SUBSCRIBE, app_id, phone, list(row["tags"]) or [""])
        await conn.execute(cq.WEB_CONSENT, app_id, phone)
    return OptInResult(True)
