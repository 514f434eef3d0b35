"""The connection pool, with the embedded PostgreSQL started and migrations applied first.

Also what callers outside the store may know about the database: the pool's type (`Pool`, to hold
and pass on, never to query) and the errors that mean "the database is unreachable or refused"
(`DB_ERRORS`), so nothing above the store imports the driver.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import TracebackType
from typing import Final, TypeAlias

import asyncpg

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from engine.config import Settings
from engine.store import queries as q
from engine.store import vault

log = logging.getLogger(__name__)

Pool: TypeAlias = asyncpg.Pool
# A lost connection, a server that went away or refused a statement: what a loop retries after.
MAX_ID: Final = 2**63 - 1  # ids are bigints: nothing beyond this can name a row
DB_ERRORS: Final[tuple[type[Exception], ...]] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# What failing to reach the database at all looks like (refused, unreachable, wrong password or database name,
# the server starting or full): a command says so in one line instead of a traceback.
CONNECT_ERRORS: Final[tuple[type[Exception], ...]] = (
    ConnectionRefusedError, socket.gaierror, asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.ConnectionFailureError,
)


async def resolve_dsn(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """ENGINE_DSN when set; otherwise start (or reuse) the embedded server in settings.data_dir."""
    if settings.dsn:
        return settings.dsn, None
    embedded = EmbeddedPostgres(settings.data_dir)
    dsn = await asyncio.to_thread(embedded.start)
    return dsn, embedded


class Database:
    """An asyncpg pool on a migrated schema. Use `await Database.open(settings)`; close when done."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, embedded: EmbeddedPostgres | None) -> None:
        self.pool = pool
        self.dsn = dsn
        self.embedded = embedded

    @classmethod
    async def open(cls, settings: Settings, *, min_size: int = 2, max_size: int = 10) -> Database:
        vault.install(vault.key_from_settings(settings))  # before the database: a bad key stops nothing half-way
        dsn, embedded = await resolve_dsn(settings)
        try:
            return await cls.connect(dsn, embedded=embedded, min_size=min_size, max_size=max_size)
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise

    @classmethod
    async def connect(
        cls, dsn: str, *, embedded: EmbeddedPostgres | None = None, min_size: int = 2, max_size: int = 10
    ) -> Database:
        """Migrate, check the secret key and seal tokens stored in plain text, then pool connections to *dsn*."""
        conn = await asyncpg.connect(dsn)
        try:
            applied = await migrate(conn)
            if applied:
                log.info("migrations applied: %s", ", ".join(applied))
            await vault.seal_stored_tokens(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
        return cls(pool, dsn, embedded)

    async def hot_pool(self, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
        """A second pool on the same database for the send path's statements (claim, admission facts, the status
        writes), whose sessions always use generic plans (`plan_cache_mode = force_generic_plan`).

        Left to itself PostgreSQL re-plans those statements on every execution: their generic plans look dearer
        to it than the custom ones, though they are the plans tests/test_queue_behaviour.py pins as never reading
        the table's history. Planning the claim took ~1.5 ms of a ~2 ms claim, on every claim. The caller closes
        the pool; the main pool's sessions keep PostgreSQL's own choice for every other statement.
        """
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.dsn, min_size=min_size, max_size=max_size, reset=_keep_session,
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )
        return pool

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def ping(pool: Pool) -> None:
    """One round trip to the database; raises one of DB_ERRORS when it cannot be reached."""
    await pool.fetchval(q.PING)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook: skip asyncpg's default reset round trip (RESET ALL, UNLISTEN *, …).

    The engine never changes session state on pooled connections: settings are SET LOCAL, advisory
    locks are transaction-scoped, LISTEN uses dedicated connections; asyncpg still rolls back an
    open transaction and drops listeners before calling this. Saves one round trip per query.
    """
