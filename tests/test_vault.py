"""Carrier tokens sealed at rest: the key (ENGINE_SECRET_KEY or a 0600 key file made on first start), sealing and
opening, plain tokens sealed at start-up (once), a process with another key stopped, and the token never stored
or shown in full."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from engine.config import Settings
from engine.errors import ConfigError
from engine.store import admin, vault
from engine.store import inbound as inbound_store
from engine.store.database import Database
from engine.testing import DEFAULT_ACCOUNT_SID

TOKEN = "f00dfacecafe0123456789abcdef4242"
# A carrier account as stored before tokens were sealed (or written by hand).
PLAIN_PROVIDER = "INSERT INTO engine_provider (app_id, kind, account_sid, auth_token) VALUES ($1, 'fake', $2, $3)"


@pytest.fixture
def other_key() -> Iterator[vault.SecretBox]:
    """Run a test with another key installed as this process's, then put the run's key back."""
    previous = vault.box()
    box = vault.install(vault.SecretBox(Fernet.generate_key(), source="another key"))
    try:
        yield box
    finally:
        vault.install(previous)


def test_seal_and_reveal() -> None:
    box = vault.SecretBox(Fernet.generate_key())
    sealed = box.seal(TOKEN)
    assert sealed.startswith(vault.PREFIX) and TOKEN not in sealed
    assert box.seal(TOKEN) != sealed  # a fresh IV each time
    assert box.reveal(sealed) == TOKEN
    assert box.reveal(TOKEN) == TOKEN  # stored before sealing existed: as is
    with pytest.raises(ConfigError, match="not the key it was sealed with"):
        vault.SecretBox(Fernet.generate_key()).reveal(sealed)
    with pytest.raises(ConfigError, match="not the key"):
        box.reveal(vault.PREFIX + "garbage")


def test_a_bad_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(ConfigError, match=r"Fernet\.generate_key"):
        vault.key_from_settings(Settings(secret_key="hunter2"))
    assert "hunter2" not in repr(Settings(secret_key="hunter2"))  # never printed with the settings


def test_the_key_file_is_made_once_with_mode_0600_beside_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "engine" / "pgdata")
    first = vault.key_from_settings(settings)
    path = tmp_path / "engine" / "secret.key"
    assert settings.secret_key_path == path and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = vault.key_from_settings(settings)
    assert again.reveal(first.seal(TOKEN)) == TOKEN  # the same key the second time
    assert not (tmp_path / "engine" / "pgdata").exists()  # nothing written into the database's own directory
    other = Settings(secret_key_file=tmp_path / "elsewhere.key")
    assert vault.key_from_settings(other).source.endswith("elsewhere.key")


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "pgdata")
    boxes: list[vault.SecretBox] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        boxes.append(vault.key_from_settings(settings))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sealed = boxes[0].seal(TOKEN)
    assert all(b.reveal(sealed) == TOKEN for b in boxes)
    assert sorted(os.listdir(tmp_path)) == ["secret.key"]  # no temporary file left behind


def test_mask_shows_only_the_last_four() -> None:
    assert vault.mask(TOKEN) == "••••••••4242"
    assert vault.mask("short") == "••••••••"


async def test_tokens_are_stored_sealed_and_read_through_the_vault(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    provider_id = await admin.add_provider(pool, "lib", kind="twilio", account_sid="AC" + "1" * 32, auth_token=TOKEN)
    stored = await pool.fetchval("SELECT auth_token FROM engine_provider")
    assert stored.startswith(vault.PREFIX) and TOKEN not in stored
    assert (await admin.app_provider(pool, "lib")).auth_token == TOKEN  # CLI provider commands
    assert await inbound_store.auth_token(pool, provider_id) == TOKEN  # webhook signatures
    assert TOKEN not in repr(await admin.app_provider(pool, "lib"))


async def test_plain_tokens_are_sealed_at_start_up_once(db_dsn: str, pool: asyncpg.Pool) -> None:
    app_id = (await admin.create_app(pool, "lib")).app_id
    await pool.execute(PLAIN_PROVIDER, app_id, DEFAULT_ACCOUNT_SID, TOKEN)
    db = await Database.connect(db_dsn, min_size=1, max_size=2)  # what every engine process does first
    await db.close()
    sealed = await pool.fetchval("SELECT auth_token FROM engine_provider")
    assert sealed.startswith(vault.PREFIX) and vault.reveal(sealed) == TOKEN
    db = await Database.connect(db_dsn, min_size=1, max_size=2)
    await db.close()
    assert await pool.fetchval("SELECT auth_token FROM engine_provider") == sealed  # idempotent: left alone


async def test_a_process_with_another_key_stops_at_start(db_dsn: str, pool: asyncpg.Pool,
                                                         other_key: vault.SecretBox) -> None:
    vault.install(vault.key_from_settings(Settings.from_env()))  # the run's key records the check value …
    db = await Database.connect(db_dsn, min_size=1, max_size=2)
    await db.close()
    vault.install(other_key)  # … and a process with another key is stopped before it seals anything
    app_id = (await admin.create_app(pool, "lib")).app_id
    await pool.execute(PLAIN_PROVIDER, app_id, DEFAULT_ACCOUNT_SID, TOKEN)
    with pytest.raises(ConfigError, match="ENGINE_SECRET_KEY"):
        await Database.connect(db_dsn, min_size=1, max_size=2)
    assert await pool.fetchval("SELECT auth_token FROM engine_provider") == TOKEN  # not sealed with the wrong key
