"""The one way tests wait for a condition another task, process or database session makes true."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]], *, timeout: float = ..., interval: float = ...,
    what: str | Callable[[], str] = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T], *, timeout: float = ..., interval: float = ..., what: str | Callable[[], str] = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "the condition",
) -> Any:
    """Call *predicate* (plain or async) every *interval* s until it returns something truthy, and return that.

    The timeout only turns a hang into a failure that says what was awaited (*what*: text, or a callable for
    text that shows the last state seen); no test asserts how long the wait took.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        await asyncio.sleep(interval)
