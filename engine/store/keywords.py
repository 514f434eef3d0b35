"""Keywords of the Carousel API (validate, associate, dissociate): unique per SMSC, so that a text starting with
one picks its application; each change is one transaction under the SMSC's keyword lock."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from engine.store import carousel_queries as cq
from engine.store.carousel import ApiApp

__all__ = ["KeywordSpec", "associate_keyword", "check_keyword", "dissociate_keyword"]


@dataclass(frozen=True, slots=True)
class KeywordSpec:
    keyword: str
    mode: int = 0  # 0 exact, 1 starts with
    auto_subscribe: bool = False
    tags: tuple[str, ...] = ()


def _overlap_error(spec: KeywordSpec, row: asyncpg.Record) -> str:
    existing: str = row["keyword"]
    if existing.upper() == spec.keyword.upper():
        return f"keyword {spec.keyword!r} is already associated with another application"
    if row["mode"] == 1 and spec.keyword.upper().startswith(existing.upper()):
        return (
            f"keyword {spec.keyword!r} would never be reached: messages starting with {existing!r} "
            "already go to another application"
        )
    return f"starts-with keyword {spec.keyword!r} would capture messages for another application's keyword {existing!r}"


async def _keyword_plan(conn: asyncpg.Connection, app: ApiApp, spec: KeywordSpec) -> tuple[list[str], int | None]:
    """(errors, id of this app's own row with the same keyword, if any).

    Overlaps with the app's own other keywords are allowed (they route to the same app); overlaps
    with other applications' keywords in the same SMSC are not.
    """
    rows = await conn.fetch(cq.KEYWORD_OVERLAPS, app.smsc_id, spec.keyword, spec.mode)
    own_id = None
    errors: list[str] = []
    for row in rows:
        if row["app_id"] == app.id:
            if row["keyword"].upper() == spec.keyword.upper():
                own_id = row["id"]
            continue
        errors.append(_overlap_error(spec, row))
    return errors, own_id


async def check_keyword(pool: asyncpg.Pool, app: ApiApp, spec: KeywordSpec) -> list[str]:
    """What associate_keyword would object to (empty: it would succeed)."""
    async with pool.acquire() as conn:
        errors, _ = await _keyword_plan(conn, app, spec)
    return errors


async def associate_keyword(pool: asyncpg.Pool, app: ApiApp, spec: KeywordSpec) -> list[str]:
    """Associate (or re-configure) the keyword for the app in its SMSC; errors instead when it overlaps."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(cq.LOCK_KEYWORD_SPACE, app.smsc_id)
        errors, own_id = await _keyword_plan(conn, app, spec)
        if errors:
            return errors
        tags = list(spec.tags)
        if own_id is None:
            await conn.execute(
                cq.INSERT_KEYWORD, app.smsc_id, app.id, spec.keyword, spec.mode, spec.auto_subscribe, tags
            )
        else:
            await conn.execute(cq.UPDATE_KEYWORD, own_id, spec.keyword, spec.mode, spec.auto_subscribe, tags)
    return []


async def dissociate_keyword(pool: asyncpg.Pool, app: ApiApp, keyword: str) -> list[str]:
    """Remove the app's keyword; errors when it is not the app's."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(cq.FIND_KEYWORD, app.id, keyword, app.smsc_id)
        if row is None:
            return [f"keyword {keyword!r} is not associated with this application"]
        if row["app_id"] != app.id:
            return [f"keyword {keyword!r} belongs to another application"]
        await conn.execute(cq.DELETE_KEYWORD, row["id"])
    return []


