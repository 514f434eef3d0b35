"""Operator passwords: argon2id hashes (argon2-cffi, its recommended parameters), and what a password must be.

Hashing is slow on purpose (tens of milliseconds and 64 MiB): the console runs it in a thread, never on the event
loop. An unknown name is checked against a dummy hash, so the time a refusal takes does not tell which names exist.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import InvalidInput

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_password_rules", "hash_password", "needs_rehash", "verify_password"]

MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 1024  # a password is hashed whole: bound the work one login may ask for

_hasher: Final = PasswordHasher()


@cache
def _dummy() -> str:
    return _hasher.hash("not a password anyone has: the timing equaliser")


def check_password_rules(password: str) -> str:
    """*password* when acceptable; InvalidInput saying what is wrong otherwise."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", f"must be at most {MAX_LENGTH} characters")
    if password.strip() != password:
        raise InvalidInput("password", "must not begin or end with white space")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash to store (salted, with its parameters)."""
    return _hasher.hash(check_password_rules(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether *password* matches *password_hash* (None: an unknown name, checked against a dummy all the same)."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (re-hash it on the next good login)."""
    return _hasher.check_needs_rehash(password_hash)
