"""SQL of the secret vault (:mod:`engine.store.vault`): the key's check value and sealing plain-text tokens."""

from __future__ import annotations

from typing import Final

LOCK: Final = "SELECT pg_advisory_xact_lock($1)"
CHECK_VALUE: Final = "SELECT sealed FROM engine_secret_check"
SAVE_CHECK_VALUE: Final = "INSERT INTO engine_secret_check (sealed) VALUES ($1) ON CONFLICT DO NOTHING"
# Tokens stored before sealing existed (or written by hand): sealed at start-up, one process at a time.
PLAIN_TOKENS: Final = "SELECT id, auth_token FROM engine_provider WHERE auth_token NOT LIKE 'fernet:%' FOR UPDATE"
SET_TOKEN: Final = "UPDATE engine_provider SET auth_token = $2 WHERE id = $1"
