"""An owner for background tasks: failures are logged (never silently lost), all are awaited on exit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class TaskGroup:
    """Spawn long-running loops; on exit they are cancelled and awaited.

    Unlike asyncio.TaskGroup, one loop crashing is logged and does not silently cancel the
    others mid-write; `failed` tells the owner something went wrong.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: set[asyncio.Task[Any]] = set()
        self.failed: list[BaseException] = []

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def spawn_resilient(
        self, factory: Callable[[], Coroutine[Any, Any, Any]], *, name: str, restart_delay: float = 0.5
    ) -> asyncio.Task[Any]:
        """Spawn a loop that is restarted (after logging) if it ever raises; it ends when it returns."""

        async def keep_running() -> None:
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("task %s:%s failed; restarting in %.1fs", self.name, name, restart_delay)
                    await asyncio.sleep(restart_delay)

        return self.spawn(keep_running(), name=name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failed.append(exc)
            log.error("task %s crashed", task.get_name(), exc_info=exc)

    async def __aenter__(self) -> TaskGroup:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        pending = list(self.tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
