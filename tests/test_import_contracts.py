"""The import contracts in pyproject.toml cover the whole engine (`lint-imports` checks them in CI)."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import engine

ROOT = Path(__file__).resolve().parent.parent


def _contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["id"] == contract_id]
    return dict(contract)


def test_every_engine_module_but_the_store_is_forbidden_asyncpg() -> None:
    """A new package or top-level module must be added to the contract's sources, or it could import asyncpg."""
    sources = {s.removesuffix(".**") for s in _contract("only-store-talks-sql")["source_modules"]}
    children = {f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__)}
    assert children - sources == {"engine.store"}


def test_temporary_ignores_name_only_the_worker() -> None:
    for contract_id in ("layers", "pure-core", "only-store-talks-sql"):
        for ignored in _contract(contract_id).get("ignore_imports", []):
            assert ignored.startswith("engine.dispatch.worker ->"), ignored
