"""Carrier auth tokens at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key kept outside the database.

The key is ``ENGINE_SECRET_KEY``, else the key file (``ENGINE_SECRET_KEY_FILE``, by default ``secret.key`` beside the
embedded data directory: ``.engine/secret.key``), created with mode 0600 on first start. A sealed value is stored as
``fernet:`` + the Fernet token. :func:`reveal` is the one way a stored token is read (every carrier client, the
webhook signature check, the CLI and the API go through it); a value without the prefix is a token stored before
this existed, and :func:`seal_stored_tokens` seals those at start-up (idempotent: sealed values are left alone).

A process holds one key (:func:`install`, from :class:`~engine.config.Settings`; the environment when nothing was
installed). ``engine_secret_check`` holds a known value sealed with the key the database was first used with, so a
process started with another key stops at once with a clear error instead of failing every send.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Final

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from engine.config import Settings
from engine.errors import ConfigError
from engine.store import vault_queries as vq

__all__ = [
    "PREFIX",
    "SecretBox",
    "box",
    "check_key",
    "install",
    "key_from_settings",
    "mask",
    "reveal",
    "seal",
    "seal_stored_tokens",
]

log = logging.getLogger(__name__)

PREFIX: Final = "fernet:"
_CHECK_VALUE: Final = "engine secret check v1"
_LOCK: Final = 0x5E_5E_0015  # transaction advisory lock: one process at a time checks the key and seals tokens
_GENERATE_HINT: Final = (
    'generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class SecretBox:
    """Seals and opens secrets with one Fernet key."""

    def __init__(self, key: bytes, *, source: str = "the secret key") -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise ConfigError(f"{source} is not a Fernet key (32 url-safe base64-encoded bytes); "
                              f"{_GENERATE_HINT}") from None
        self.source = source

    def __repr__(self) -> str:
        return f"SecretBox(source={self.source!r})"

    def seal(self, plain: str) -> str:
        """*plain* encrypted and authenticated, with the prefix that marks it sealed."""
        return PREFIX + self._fernet.encrypt(plain.encode()).decode("ascii")

    def reveal(self, stored: str) -> str:
        """The secret in *stored*: opened when sealed, as is when stored before sealing existed."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"a stored secret cannot be opened with {self.source}: this is not the key it was sealed with "
                "(set ENGINE_SECRET_KEY, or ENGINE_SECRET_KEY_FILE, to the key the other engine processes use)"
            ) from None


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret key file %s is readable by others (mode %o): chmod 600 it", path, stat.S_IMODE(mode))
    key = path.read_bytes().strip()
    if not key:
        raise ConfigError(f"secret key file {path} is empty")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key to *path* atomically (complete before it appears) with mode 0600; another process creating
    it at the same moment wins harmlessly (both then read the one that was linked first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        log.warning("created a new secret key in %s (mode 0600): keep it, and back it up apart from the database; "
                    "the carrier tokens cannot be read without it", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def key_from_settings(settings: Settings) -> SecretBox:
    """The key the settings name: ENGINE_SECRET_KEY, else the key file (created on first start)."""
    if settings.secret_key:
        return SecretBox(settings.secret_key.strip().encode(), source="ENGINE_SECRET_KEY")
    path = settings.secret_key_path
    if not path.exists():
        _create_key_file(path)
    return SecretBox(_read_key_file(path), source=f"the key file {path}")


_box: SecretBox | None = None


def install(secret_box: SecretBox) -> SecretBox:
    """Make *secret_box* this process's key."""
    global _box
    _box = secret_box
    return secret_box


def box() -> SecretBox:
    """This process's key: the installed one, else the one the environment names (read once)."""
    return _box if _box is not None else install(key_from_settings(Settings.from_env()))


def seal(plain: str) -> str:
    """*plain* sealed with this process's key (what is written to ``engine_provider.auth_token``)."""
    return box().seal(plain)


def reveal(stored: str) -> str:
    """The one way a stored carrier token is read: opened with this process's key."""
    if not stored.startswith(PREFIX):
        return stored
    return box().reveal(stored)


def mask(token: str) -> str:
    """What an operator may see of a token: its length hidden, its last four characters shown."""
    return "••••••••" + token[-4:] if len(token) >= 12 else "••••••••"


async def check_key(conn: asyncpg.Connection) -> None:
    """Stop (ConfigError) when this process's key is not the one the database's secrets are sealed with; the first
    process to start records its key's check value."""
    sealed = await conn.fetchval(vq.CHECK_VALUE)
    if sealed is None:
        await conn.execute(vq.SAVE_CHECK_VALUE, seal(_CHECK_VALUE))
        return
    if reveal(sealed) != _CHECK_VALUE:  # pragma: no cover - a matching key that seals another value: impossible
        raise ConfigError("the secret check value is wrong")


async def seal_stored_tokens(conn: asyncpg.Connection) -> int:
    """Check the key, then seal every carrier token still stored in plain text; returns how many. Idempotent, and
    one process at a time (a transaction advisory lock)."""
    async with conn.transaction():
        await conn.execute(vq.LOCK, _LOCK)
        await check_key(conn)
        rows = await conn.fetch(vq.PLAIN_TOKENS)
        for row in rows:
            await conn.execute(vq.SET_TOKEN, row["id"], seal(row["auth_token"]))
    if rows:
        log.info("sealed %d carrier token(s) stored in plain text", len(rows))
    return len(rows)
