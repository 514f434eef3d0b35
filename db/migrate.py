"""Apply the ordered SQL files in db/migrations once each, under an advisory lock.

Several processes may start at once (workers, API servers); the lock makes exactly one apply
each pending file, inside one transaction per file, and the others wait then see it recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Arbitrary constant shared by every engine process: the advisory lock key for migrations.
MIGRATION_LOCK_KEY = 0x5E_5E_0001


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


def load_migrations() -> list[Migration]:
    """All migrations shipped with the package, ordered by file name (0001_…, 0002_…)."""
    folder = resources.files("db") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name
    )
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text("utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations on *conn*; return the versions applied by this call."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS engine_schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM engine_schema_migrations")}
        for m in load_migrations():
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO engine_schema_migrations (version) VALUES ($1)", m.version)
            log.info("applied migration %s", m.version)
            applied_now.append(m.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
