"""Every named SQL statement of the engine prepares against the migrated schema.

Catches syntax errors, missing columns and untyped parameters (`unknown + unknown`) in statements
that only run on rare paths (heartbeats, recovery, admin), before they run in production.
"""

from __future__ import annotations

import importlib
import pkgutil

import asyncpg
import pytest

import engine.store


def _statements() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for mod in pkgutil.iter_modules(engine.store.__path__):
        if "queries" not in mod.name:
            continue
        module = importlib.import_module(f"engine.store.{mod.name}")
        for name, value in vars(module).items():
            if not name.isupper() or name.startswith("_"):  # _FRAGMENTS are pieces of statements
                continue
            if isinstance(value, str) and value.strip():
                found.append((f"{mod.name}.{name}", value))
            elif isinstance(value, dict):
                found.extend((f"{mod.name}.{name}[{k}]", v) for k, v in value.items() if isinstance(v, str))
    return found


STATEMENTS = _statements()


def test_registry_is_not_empty() -> None:
    assert len(STATEMENTS) > 50


@pytest.mark.parametrize(("name", "sql"), STATEMENTS, ids=[n for n, _ in STATEMENTS])
async def test_statement_prepares(pool: asyncpg.Pool, name: str, sql: str) -> None:
    async with pool.acquire() as conn:
        await conn.prepare(sql)
