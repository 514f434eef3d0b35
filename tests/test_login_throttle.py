"""The console's login throttle (pure, injected clock): how many failures a name and an address may have."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.logins import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_name_gets_its_failures_then_waits_until_the_oldest_ages_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, per_name=3, per_address=100, window=60)
    for i in range(3):
        assert throttle.retry_after("ops", "10.0.0.1") == 0
        throttle.failed("ops", "10.0.0.1")
        clock.now += 10 * (i + 1)  # failures at 0, 10, 30
    assert clock.now == 60
    # The failure at 0 has aged out at 60 exactly: one more attempt may be checked.
    assert throttle.retry_after("ops", "10.0.0.1") == 0
    throttle.failed("ops", "10.0.0.1")  # at 60: failures at 10, 30, 60
    assert throttle.retry_after("ops", "10.0.0.1") == 10  # until the one at 10 ages out
    assert throttle.retry_after("OPS ", "10.0.0.2") == 10  # names compare case-blind, from any address
    assert throttle.retry_after("other", "10.0.0.1") == 0
    clock.now += 10
    assert throttle.retry_after("ops", "10.0.0.1") == 0


def test_success_forgives_the_name_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, per_name=2, per_address=3, window=100)
    throttle.failed("a", "ip")
    throttle.failed("a", "ip")
    assert throttle.retry_after("a", "ip") > 0
    throttle.succeeded("a", "ip")
    assert throttle.retry_after("a", "ip") == 0  # (the address has 2 of its 3)
    throttle.failed("b", "ip")
    assert throttle.retry_after("c", "ip") == 100  # the address is spent: every name waits


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(Clock(), max_keys=100)
    for i in range(1000):
        throttle.failed(f"name{i}", f"addr{i}")
    assert len(throttle) <= 100


@pytest.mark.parametrize("bad", [{"per_name": 0}, {"per_address": 0}, {"window": 0}, {"max_keys": 1}])
def test_bad_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoginThrottle(Clock(), **bad)  # type: ignore[arg-type]


attempts = st.lists(
    st.tuples(st.floats(min_value=0, max_value=40), st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"]),
              st.booleans()),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(attempts)
def test_no_window_ever_checks_more_failing_passwords_than_allowed(steps: list[tuple[float, str, str, bool]]) -> None:
    """An attacker gets at most per_name wrong passwords checked for a name (since its last right one), and
    per_address from an address, in any window; an attempt refused is not checked at all (so not counted)."""
    clock = Clock()
    per_name, per_address, window = 3, 5, 100.0
    throttle = LoginThrottle(clock, per_name=per_name, per_address=per_address, window=window)
    checked: list[tuple[float, str, str]] = []  # failing attempts whose password was checked
    forgiven: dict[str, float] = {}  # name -> time of its last right password
    for gap, name, address, right in steps:
        clock.now += gap
        wait = throttle.retry_after(name, address)
        assert wait >= 0
        if wait > 0:
            continue  # refused unchecked
        if right:
            throttle.succeeded(name, address)
            forgiven[name] = clock.now
            checked = [c for c in checked if c[1] != name or c[0] > clock.now]
            continue
        throttle.failed(name, address)
        checked.append((clock.now, name, address))
        recent = [c for c in checked if c[0] > clock.now - window]
        assert sum(1 for c in recent if c[1] == name) <= per_name
        assert sum(1 for c in recent if c[2] == address) <= per_address


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=50))
def test_the_wait_it_announces_is_exact(gaps: list[float]) -> None:
    """Told to wait w seconds, an attempt at now + w is checked, and one a moment earlier is not (a moment: 1 µs;
    now + w itself is off by a rounding error in floating point)."""
    clock = Clock()
    throttle = LoginThrottle(clock, per_name=2, per_address=1000, window=50)
    for gap in gaps:
        clock.now += gap
        wait = throttle.retry_after("ops", "ip")
        if wait == 0:
            throttle.failed("ops", "ip")
            continue
        start = clock.now
        clock.now = start + wait - 1e-6
        assert throttle.retry_after("ops", "ip") > 0
        clock.now = start + wait + 1e-9
        assert throttle.retry_after("ops", "ip") == 0
