"""The event loop the suite runs on, and the recorder that makes unhandled loop exceptions fail a test.

``ENGINE_TEST_LOOP=uvloop`` runs every test on uvloop (production uses it when installed); unset or ``asyncio``,
the stdlib loop. tests/conftest.py hands the choice to pytest-asyncio; :class:`LoopThread` uses it too.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")
LOOP_ENV: Final = "ENGINE_TEST_LOOP"
LOOPS: Final = ("asyncio", "uvloop")


def loop_name() -> str:
    """The loop the suite was asked to run on."""
    name = os.environ.get(LOOP_ENV, "") or "asyncio"
    if name not in LOOPS:
        raise ValueError(f"{LOOP_ENV} must be one of {', '.join(LOOPS)}, got {name!r}")
    return name


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A callable making a new event loop of the selected kind."""
    if loop_name() == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


class LoopExceptions:
    """An event-loop exception handler that keeps what it is given: exceptions no code retrieved (a task or future
    that failed unobserved, a callback that raised, an unclosed client session), then logs them as asyncio would."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        loop.default_exception_handler(context)

    def describe(self) -> str:
        lines = []
        for context in self.contexts[:5]:
            error = context.get("exception")
            lines.append(f"- {context.get('message', '')}" + (f": {error!r}" if error is not None else ""))
        return "\n".join(lines)


class LoopThread:
    """An event loop (of the selected kind) running in a thread of its own, so that synchronous code (a Hypothesis
    test) can drive coroutines; an unhandled exception on it fails :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = loop_factory()()
        self.exceptions = LoopExceptions()
        self.loop.set_exception_handler(self.exceptions)
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run *coro* on the thread's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is left on the loop, stop and close it; then fail if it saw an unhandled exception."""
        try:
            if self._thread.is_alive():
                self.run(self._cancel_the_rest(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self.loop.close()
        assert not self.exceptions.contexts, "unhandled exceptions on the loop:\n" + self.exceptions.describe()

    async def _cancel_the_rest(self) -> None:
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        gc.collect()  # a task that failed unobserved is reported when it is collected
