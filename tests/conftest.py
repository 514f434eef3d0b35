"""Shared fixtures: one real PostgreSQL per session (embedded pgserver, or ENGINE_TEST_DSN / ENGINE_DSN),
a migrated template database, and a fresh database per test cloned from it; every test fails on an exception
its event loop was left to report; ENGINE_TEST_LOOP=uvloop runs the suite on uvloop.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from tests.helpers.database import with_database
from tests.helpers.loops import LoopExceptions, loop_factory, loop_name

TEMPLATE = "engine_test_template"
# One secret key for the whole run, this process and the engine processes tests start (they inherit the
# environment): carrier tokens are sealed with it, and no test writes a key file into the working directory.
os.environ.setdefault("ENGINE_SECRET_KEY", Fernet.generate_key().decode())
_counter = itertools.count()


if loop_name() == "uvloop":
    _LOOP = loop_factory()

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        """pytest-asyncio's hook (1.x): the event loop every async test and fixture runs on."""
        return {"uvloop": _LOOP}

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        """pytest-asyncio parametrizes only async tests with the hook's factory; a synchronous test using async
        fixtures (the autouse one below, the databases) would ask for the session loop without it, and pytest
        would tear that loop down with every session fixture on it. So every test names the same factory."""
        if "_asyncio_loop_factory" not in metafunc.fixturenames:
            metafunc.fixturenames.append("_asyncio_loop_factory")
            metafunc.parametrize("_asyncio_loop_factory", [_LOOP], indirect=True, scope="session",
                                 ids=[pytest.HIDDEN_PARAM])

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        """The uvloop pass is for code that runs on the event loop: a synchronous test (pure logic, properties,
        a command in a subprocess that picks its own loop) runs the same code as in the default pass, so it is
        deselected here (ENGINE_TEST_LOOP_ALL=1 keeps it)."""
        if os.environ.get("ENGINE_TEST_LOOP_ALL") == "1":
            return
        keep = [i for i in items if isinstance(i, pytest.Function) and inspect.iscoroutinefunction(i.obj)]
        if len(keep) < len(items):
            kept = set(map(id, keep))
            config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept])
            items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    return f"event loop: {loop_name()} (ENGINE_TEST_LOOP)"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (modules, Hypothesis strategies) out of the cyclic collector's sight, so the
    full collection after each async test scans only what tests made."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
async def fail_on_unhandled_loop_exceptions(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail the test (at teardown) on an exception its event loop was left to report: a task or future that
    failed with nobody to see it, a callback that raised, a client session never closed. A test that provokes
    one on purpose says so with @pytest.mark.loop_exceptions("why")."""
    loop = asyncio.get_running_loop()
    recorder = LoopExceptions()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(recorder)
    try:
        yield
        if pytest_asyncio.is_async_test(request.node):
            gc.collect()  # a failed task nobody awaited is reported when it is collected: now, not in a later test
    finally:
        loop.set_exception_handler(previous)
    if recorder.contexts and request.node.get_closest_marker("loop_exceptions") is None:
        pytest.fail(f"unhandled exceptions on the event loop:\n{recorder.describe()}", pytrace=False)


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
        shutil.rmtree(tmp, ignore_errors=True)  # the session's whole server (a few hundred MB after a full run)


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
