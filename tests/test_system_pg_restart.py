"""PostgreSQL restarted under running workers: they reconnect and finish, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from db.embedded import EmbeddedPostgres
from engine.store.database import Database
from engine.submit import Outgoing, submit_many
from tests.helpers.database import state_counts, wait_final
from tests.helpers.engine import setup_app
from tests.helpers.polling import wait_until
from tests.helpers.processes import (
    carrier_records,
    free_port,
    processes,
    start_carrier,
    start_server,
    wait_callbacks_posted,
)

pytestmark = pytest.mark.system


async def _delivered_at_least(dsn: str, n: int) -> bool:
    return (await state_counts(dsn)).get("delivered", 0) >= n


@pytest.mark.timeout(300)
async def test_workers_survive_a_postgres_restart() -> None:
    n = 4000
    data = Path(tempfile.mkdtemp(prefix="engine-restart-")) / "pgdata"
    server = EmbeddedPostgres(data)
    dsn = await asyncio.to_thread(server.start)
    try:
        db = await Database.connect(dsn, max_size=4)
        port = free_port()
        async with processes(dsn, ENGINE_LEASE_SECONDS="6", ENGINE_POLL_SECONDS="0.2",
                             ENGINE_PUBLIC_URL=f"http://127.0.0.1:{port}") as procs:
            carrier_url = await start_carrier(procs, "--callbacks", "final", "--latency", "0")
            await setup_app(db.pool, carrier_url, dids=20, limit_per_min=1200)
            await submit_many(db.pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"n{i}") for i in range(n)])
            await db.close()
            await start_server(procs, port)
            await procs.worker()
            await procs.worker()
            await wait_until(lambda: _delivered_at_least(dsn, 500), interval=0.1, what="500 delivered")
            # Stop the server under them (connections cut mid-query), keep it down a moment, restart.
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.5)
            server = EmbeddedPostgres(data)
            await asyncio.to_thread(server.start)
            await wait_final(dsn, n, timeout=180, interval=0.25)
            await wait_callbacks_posted(carrier_url)
            counts = await state_counts(dsn)
            records = await carrier_records(carrier_url)
            for p in procs.procs[2:]:
                assert await procs.stop(p) == 0
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(data.parent, ignore_errors=True)  # its own server's data directory (~80 MB)
    per_body = Counter(r["body"] for r in records)
    assert max(per_body.values()) == 1  # nothing sent twice
    # Nothing lost: everything is final; a send cut off by the outage may be 'unknown' (at-most-once),
    # but only if the carrier never got it.
    assert sum(counts.values()) == n
    assert counts.get("delivered", 0) == len(per_body)
