"""The fuzz run: thousands of drawn requests, each reply and its effect on the database checked."""

from __future__ import annotations

import time
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.checks import TABLES, Tally, check_reply, check_writes, describe, fault_log
from tests.fuzz.live import UNCLOSED_SPOOL, LiveEngine, Request
from tests.fuzz.strategies import api_requests, raw_requests, webhook_requests

pytestmark = UNCLOSED_SPOOL

MIN_REQUESTS: Final = 2000


@pytest.mark.timeout(300)
def test_fuzzed_api_and_webhook_requests_never_fail_the_server_or_write_partially(engine: LiveEngine) -> None:
    tally = Tally()
    state = {"before": engine.snapshot()}
    started = time.monotonic()

    @settings(
        max_examples=MIN_REQUESTS + 100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["api"] * 13 + ["webhook"] * 6 + ["raw"]), label="kind")
        builder = {"api": api_requests, "webhook": webhook_requests, "raw": raw_requests}[kind]
        request = data.draw(builder(engine), label="request")
        before = state["before"]
        reply = engine.send(request)
        tally.sent += 1
        state["before"] = after = engine.snapshot()  # (kept even when a check fails, for the next example)
        check_reply(engine, request, reply, tally)
        check_writes(engine, request, reply, before, after, tally)

    with fault_log() as faults:
        fuzz()
    elapsed = time.monotonic() - started
    print(f"\n{tally.sent} requests in {elapsed:.1f}s; {tally.positive_ids} messages queued; "
          f"{tally.carrier_refusals} carrier refusals")
    for (what, status), n in sorted(tally.statuses.items()):
        print(f"  {what:>20} {status}: {n}")

    assert tally.sent >= MIN_REQUESTS
    assert not faults, describe(faults)
    # The fuzz reached the interesting paths, not only the 4xx ones.
    assert tally.positive_ids > 0
    assert tally.statuses[("webhook", 204)] > 0 and tally.statuses[("webhook", 403)] > 0
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE status_rank > 0") > 0  # callbacks wrote
    assert engine.runtime is not None and engine.runtime.intake is not None
    assert engine.runtime.intake.writer.failures == 0 and len(engine.runtime.intake.writer) == 0
    # The schema is intact and holds exactly what the successful sends reported.
    for table in TABLES:
        assert engine.fetchval("SELECT to_regclass($1)::text", table) == table
    ids = sorted(r["id"] for r in engine.fetch("SELECT id FROM engine_outbound"))
    assert ids == sorted(engine.issued)
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE recipient !~ '^\\+[1-9][0-9]{6,14}$'") == 0
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE app_id <> ALL($1::bigint[])",
                           [engine.app_id, engine.bare_app_id]) == 0
    assert engine.fetchval("SELECT count(*) FROM engine_app") == 2
    health = engine.send(Request("api", "GET", "/healthz"))
    assert health.status == 200
