"""The engine under fuzz, one per test on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.live import LiveEngine


@pytest.fixture
def engine(db_dsn: str) -> Iterator[LiveEngine]:
    live = LiveEngine(db_dsn)
    try:
        live.start()
        yield live
    finally:
        live.stop()
