"""The write buffer's shutdown: a batch whose write was cancelled is written by drain(), not lost."""

from __future__ import annotations

import asyncio

from engine.runtime.batcher import Batcher


async def test_a_batch_cancelled_mid_write_is_written_by_drain() -> None:
    written: list[list[int]] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def flush(batch: list[int]) -> None:
        if not written and not release.is_set():
            started.set()
            await release.wait()  # the first write hangs until cancelled: the owner shuts down meanwhile
        written.append(batch)

    batcher = Batcher[int](flush, name="t", max_delay=0.0)
    task = asyncio.create_task(batcher.run())
    for i in range(3):
        batcher.put_nowait(i)
    await asyncio.wait_for(started.wait(), 5)
    batcher.put_nowait(3)  # arrives while the first write is in flight
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert written == [] and len(batcher) == 4
    release.set()
    assert await batcher.drain()
    assert written == [[0, 1, 2, 3]]


async def test_a_waiting_caller_is_released_when_drain_writes_its_cancelled_batch() -> None:
    written: list[int] = []
    hang = asyncio.Event()

    async def flush(batch: list[int]) -> None:
        if not hang.is_set():
            hang.set()
            await asyncio.Event().wait()
        written.extend(batch)

    batcher = Batcher[int](flush, name="t", max_delay=0.0)
    task = asyncio.create_task(batcher.run())
    caller = asyncio.create_task(batcher.put(7))
    await asyncio.wait_for(hang.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not caller.done()
    assert await batcher.drain()
    await asyncio.wait_for(caller, 5)
    assert written == [7]
