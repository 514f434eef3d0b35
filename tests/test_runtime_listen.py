"""The reconnecting LISTEN loop (engine.runtime.listen), on fake subscriptions: no database, no sleeping
beyond the loop's own tiny intervals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from engine.runtime.listen import Listener, Subscription


class FakeSubscription:
    """A connection that stays open until `drop()`; counts its closes."""

    def __init__(self, on_notify: Callable[[], None]) -> None:
        self.on_notify = on_notify
        self.closed = False
        self.close_calls = 0

    def is_closed(self) -> bool:
        return self.closed

    async def close(self) -> None:
        self.close_calls += 1
        self.closed = True

    def drop(self) -> None:
        self.closed = True


class FakeServer:
    """Hands out subscriptions; the first *failures* attempts raise OSError (server unreachable)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.opened: list[FakeSubscription] = []
        self.changed = asyncio.Event()

    async def subscribe(self, on_notify: Callable[[], None]) -> Subscription:
        self.attempts += 1
        self.changed.set()
        if self.attempts <= self.failures:
            raise OSError("connection refused")
        sub = FakeSubscription(on_notify)
        self.opened.append(sub)
        return sub

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def _listener(server: FakeServer, wake: asyncio.Event) -> Listener:
    return Listener(server.subscribe, wake, name="test", errors=(OSError,), retry_delay=0.001, check_interval=0.001)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wakes_on_connect_and_on_every_notification() -> None:
    server, wake = FakeServer(), asyncio.Event()
    listener = _listener(server, wake)
    task = asyncio.create_task(listener.run())
    await server.until(lambda: len(server.opened) == 1)
    await asyncio.wait_for(wake.wait(), 5)  # set on connect: rows inserted while nobody listened
    wake.clear()
    server.opened[0].on_notify()
    assert wake.is_set()
    await _stop(task)
    assert server.opened[0].close_calls == 1  # cancelling closes the connection
    assert listener.connects == 1


async def test_reconnects_after_the_connection_drops(caplog: pytest.LogCaptureFixture) -> None:
    server, wake = FakeServer(), asyncio.Event()
    listener = _listener(server, wake)
    task = asyncio.create_task(listener.run())
    await server.until(lambda: len(server.opened) == 1)
    with caplog.at_level(logging.WARNING, logger="engine.runtime.listen"):
        server.opened[0].drop()
        await server.until(lambda: len(server.opened) == 2)
    assert "LISTEN connection closed" in caplog.text
    wake.clear()
    server.opened[1].on_notify()
    assert wake.is_set()
    await _stop(task)
    assert listener.connects == 2


async def test_keeps_trying_while_the_server_refuses(caplog: pytest.LogCaptureFixture) -> None:
    server, wake = FakeServer(failures=3), asyncio.Event()
    listener = _listener(server, wake)
    with caplog.at_level(logging.WARNING, logger="engine.runtime.listen"):
        task = asyncio.create_task(listener.run())
        await server.until(lambda: len(server.opened) == 1)
    assert server.attempts == 4
    assert caplog.text.count("LISTEN connection lost (OSError)") == 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
    await _stop(task)


async def test_other_errors_are_not_swallowed() -> None:
    async def broken(_: Callable[[], None]) -> Subscription:
        raise RuntimeError("a bug, not a lost connection")

    listener = Listener(broken, asyncio.Event(), name="test", errors=(OSError,))
    with pytest.raises(RuntimeError):
        await listener.run()
