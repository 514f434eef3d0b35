"""ProviderGate: circuit breaker and account-wide 429 pause, with an injected clock."""

from __future__ import annotations

from engine.dispatch.breaker import ProviderGate


def state(g: ProviderGate) -> str:
    """The gate's state, read fresh (mypy would otherwise keep an earlier narrowing)."""
    return g.state


def test_opens_after_a_burst_of_failures_then_probes_and_closes() -> None:
    g = ProviderGate(threshold=5, window=10.0, open_seconds=2.0)
    for i in range(4):
        assert g.allow(float(i) / 10)
        g.record(False, float(i) / 10)
    assert state(g) == "closed"
    g.record(False, 0.5)
    assert state(g) == "open" and not g.allow(1.0) and g.reopen_at() == 2.5
    assert g.allow(2.5) and state(g) == "half-open"  # one probe…
    assert not g.allow(2.6)  # …at a time
    g.record(True, 2.7)
    assert state(g) == "closed" and g.allow(2.8)


def test_failed_probe_reopens_for_longer_up_to_a_cap() -> None:
    g = ProviderGate(threshold=1, open_seconds=1.0, max_open_seconds=4.0, growth=2.0)
    g.record(False, 0.0)
    opens = []
    t = 0.0
    for _ in range(5):
        t = g.reopen_at()
        assert g.allow(t)
        g.record(False, t)
        opens.append(g.reopen_at() - t)
    assert opens == [2.0, 4.0, 4.0, 4.0, 4.0]


def test_failures_outnumbered_by_successes_do_not_open() -> None:
    g = ProviderGate(threshold=3, window=10.0)
    for i in range(10):
        g.record(True, i * 0.1)
    for i in range(5):
        g.record(False, 1 + i * 0.1)
    assert state(g) == "closed"


def test_old_failures_leave_the_window() -> None:
    g = ProviderGate(threshold=3, window=1.0)
    g.record(False, 0.0)
    g.record(False, 0.5)
    g.record(False, 2.0)  # the first two are older than the window
    assert state(g) == "closed"


def test_429_pauses_the_account_independently_of_the_breaker() -> None:
    g = ProviderGate()
    g.pause(5.0)
    assert not g.allow(4.9) and g.allow(5.0)
    g.pause(3.0)  # an earlier Retry-After never shortens a pause
    assert g.reopen_at() == 5.0
