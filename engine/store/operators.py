"""Operator accounts (``engine operator …``) and the console's server-side sessions.

Passwords arrive here already hashed (argon2id, :mod:`engine.console.passwords`); session tokens arrive as their
sha256 (the token itself lives only in the browser's cookie).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from engine.errors import InvalidInput, NotFound
from engine.store import operator_queries as oq

__all__ = [
    "LoginFacts",
    "Operator",
    "OperatorRow",
    "create_operator",
    "end_session",
    "list_operators",
    "login_facts",
    "open_session",
    "remove_operator",
    "session_operator",
    "set_password",
    "upgrade_hash",
    "validate_name",
]

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}")


@dataclass(frozen=True, slots=True)
class Operator:
    """Who is logged in."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class LoginFacts:
    id: int
    name: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class OperatorRow:
    name: str
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None
    sessions: int


def validate_name(name: str) -> str:
    """An operator's name: 1-63 letters, digits, '_', '.', '@', '-' (starting with a letter or digit)."""
    if not _NAME.fullmatch(name):
        raise InvalidInput("NAME", "use 1-63 letters, digits, '_', '.', '@', '-', starting with a letter or digit")
    return name


async def create_operator(pool: asyncpg.Pool, name: str, password_hash: str) -> int:
    validate_name(name)
    try:
        return int(await pool.fetchval(oq.CREATE_OPERATOR, name, password_hash))
    except asyncpg.UniqueViolationError:
        raise InvalidInput("NAME", f"an operator named {name!r} already exists") from None


async def list_operators(pool: asyncpg.Pool) -> list[OperatorRow]:
    return [OperatorRow(**dict(r)) for r in await pool.fetch(oq.LIST_OPERATORS)]


async def remove_operator(pool: asyncpg.Pool, name: str) -> None:
    """Delete the operator and (cascading) every session of theirs."""
    if await pool.fetchval(oq.DELETE_OPERATOR, name) is None:
        raise NotFound(f"no operator named {name!r}")


async def set_password(pool: asyncpg.Pool, name: str, password_hash: str) -> None:
    """Store a new password hash and end the operator's sessions, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        operator_id = await conn.fetchval(oq.SET_PASSWORD, name, password_hash)
        if operator_id is None:
            raise NotFound(f"no operator named {name!r}")
        await conn.execute(oq.END_OPERATOR_SESSIONS, operator_id)


async def login_facts(pool: asyncpg.Pool, name: str) -> LoginFacts | None:
    row = await pool.fetchrow(oq.LOGIN_FACTS, name)
    return None if row is None else LoginFacts(row["id"], row["name"], row["password_hash"])


async def upgrade_hash(pool: asyncpg.Pool, operator_id: int, password_hash: str) -> None:
    """Replace a hash made with older parameters (argon2's check_needs_rehash) after a successful login."""
    await pool.execute(oq.UPGRADE_HASH, operator_id, password_hash)


async def open_session(pool: asyncpg.Pool, operator_id: int, id_hash: str, lifetime_seconds: float) -> None:
    """Record a login: a session valid *lifetime_seconds* at most; expired sessions are swept at the same time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(oq.DROP_EXPIRED_SESSIONS)
        await conn.execute(oq.OPEN_SESSION, id_hash, operator_id, float(lifetime_seconds))


async def session_operator(pool: asyncpg.Pool, id_hash: str, idle_seconds: float) -> Operator | None:
    """The operator a session belongs to while it is valid (not expired, not idle longer than *idle_seconds*)."""
    row = await pool.fetchrow(oq.SESSION, id_hash, float(idle_seconds))
    if row is None:
        return None
    if row["stale"]:
        await pool.execute(oq.TOUCH_SESSION, id_hash)
    return Operator(row["id"], row["name"])


async def end_session(pool: asyncpg.Pool, id_hash: str) -> None:
    await pool.execute(oq.END_SESSION, id_hash)
