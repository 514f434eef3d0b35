"""Shared fixtures: one real PostgreSQL per session (embedded pgserver, or ENGINE_TEST_DSN / ENGINE_DSN),
a migrated template database, and a fresh database per test cloned from it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from tests.helpers.database import with_database

TEMPLATE = "engine_test_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of the server tests run against (an admin database on it)."""
    given = os.environ.get("ENGINE_TEST_DSN") or os.environ.get("ENGINE_DSN")
    if given:
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="engine-test-pg-"))
    server = EmbeddedPostgres(tmp / "pgdata")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_db(server_dsn: str) -> str:
    """Migrate once into a template database; each test clones it (fast, isolated)."""
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    tconn = await asyncpg.connect(with_database(server_dsn, TEMPLATE))
    try:
        await migrate(tconn)
    finally:
        await tconn.close()
    return TEMPLATE


@pytest.fixture
async def db_dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"engine_t{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    finally:
        await conn.close()
    yield with_database(server_dsn, name)
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(db_dsn, min_size=1, max_size=10)
    try:
        yield p
    finally:
        await asyncio.wait_for(p.close(), 10)
