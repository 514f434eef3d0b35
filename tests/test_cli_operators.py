"""`engine operator add|list|passwd|remove` and `engine app rotate-key` as operators run them (real processes), and
the API's key cache dropped the moment a key changes, in every API server (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest

from engine.api.carousel import ApiError, CarouselApi
from engine.config import Settings
from engine.console.passwords import verify_password
from engine.store import admin
from tests.helpers.polling import wait_until
from tests.helpers.processes import Completed
from tests.helpers.processes import run_command as engine


async def engine_with_input(dsn: str, stdin: str, *args: str) -> Completed:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", *args, env={**os.environ, "ENGINE_DSN": dsn},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 120)
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())


@pytest.mark.system
async def test_operator_commands(db_dsn: str, pool: asyncpg.Pool) -> None:
    rc, out, err = await engine_with_input(db_dsn, "a long enough password\n", "operator", "add", "ana",
                                           "--password-stdin")
    assert rc == 0, err
    assert "operator ana added" in out and "/console/" in out
    stored = await pool.fetchval("SELECT password_hash FROM engine_operator WHERE name = 'ana'")
    assert stored.startswith("$argon2id$") and "a long enough password" not in stored
    assert verify_password(stored, "a long enough password")

    for stdin, args, message in (
        ("short\n", ("add", "bob", "--password-stdin"), "at least 10 characters"),
        ("a long enough password\n", ("add", "ana", "--password-stdin"), "already exists"),
        ("a long enough password\n", ("add", "bad name!", "--password-stdin"), "NAME"),
        ("", ("add", "bob"), "--password-stdin"),  # no terminal to ask at
        ("another long password\n", ("passwd", "nobody", "--password-stdin"), "no operator named"),
    ):
        rc, _, err = await engine_with_input(db_dsn, stdin, "operator", *args)
        assert rc == 2 and message in err, (args, err)
    assert await pool.fetchval("SELECT count(*) FROM engine_operator") == 1

    await pool.execute("INSERT INTO engine_console_session (id_hash, operator_id, expires_at) "
                       "SELECT 'x', id, now() + interval '1 hour' FROM engine_operator")
    rc, out, err = await engine(db_dsn, "operator", "list", "--json")
    assert rc == 0, err
    assert '"name":"ana"' in out and '"sessions":1' in out
    rc, out, err = await engine_with_input(db_dsn, "another long password\n", "operator", "passwd", "ana",
                                           "--password-stdin")
    assert rc == 0 and "sessions ended" in out, err
    assert verify_password(await pool.fetchval("SELECT password_hash FROM engine_operator"), "another long password")
    assert await pool.fetchval("SELECT count(*) FROM engine_console_session") == 0
    rc, out, err = await engine(db_dsn, "operator", "remove", "ana")
    assert rc == 0, err
    assert await pool.fetchval("SELECT count(*) FROM engine_operator") == 0
    rc, _, err = await engine(db_dsn, "operator", "remove", "ana")
    assert rc == 2 and "no operator named" in err


@pytest.mark.system
async def test_rotate_key_prints_the_new_key_once_and_the_old_one_stops_working(db_dsn: str,
                                                                                pool: asyncpg.Pool) -> None:
    new = await admin.create_app(pool, "lib")
    api = CarouselApi(pool, Settings(), cache_seconds=3600)  # a cache that would keep the old key an hour
    watcher = asyncio.create_task(api.watch_keys(db_dsn))
    try:
        assert (await api.authenticate(new.api_key)).name == "lib"  # cached now
        rc, out, err = await engine(db_dsn, "app", "rotate-key", "lib", "--json")
        assert rc == 0, err
        key = out.strip().split('"api_key":"')[1].split('"')[0]
        assert key != new.api_key

        async def refused() -> bool:
            try:
                await api.authenticate(new.api_key)
            except ApiError as exc:
                return exc.status == 401
            return False

        await wait_until(refused, timeout=10, what="the old key refused after the NOTIFY")
        assert (await api.authenticate(key)).name == "lib"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    rc, _, err = await engine(db_dsn, "app", "rotate-key", "nope")
    assert rc == 2 and "no application named" in err


async def test_a_lookup_racing_a_key_change_is_not_cached(pool: asyncpg.Pool) -> None:
    """A lookup that read the old key just before the change must not cache it after forget_keys ran."""
    new = await admin.create_app(pool, "lib")
    api = CarouselApi(pool, Settings(), cache_seconds=3600)
    real = api.pool

    class RacingPool:
        """Lets the key change (and its forget_keys) happen between the lookup and its caching."""

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        async def fetchrow(self, *args: object) -> object:
            row = await real.fetchrow(*args)
            await admin.rotate_api_key(real, "lib")
            api.forget_keys()
            return row

    api.pool = RacingPool()
    assert (await api.authenticate(new.api_key)).name == "lib"  # answered from before the change …
    api.pool = real
    with pytest.raises(ApiError):
        await api.authenticate(new.api_key)  # … but not kept
