"""The engine's commands as real processes (system tests): a fake carrier, a webhook server, workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import orjson

from benchmarks.processes import free_port as free_port  # the system tests take it from here
from tests.helpers.polling import wait_until


class Completed(NamedTuple):
    """What a finished command left: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


async def run_command(dsn: str, *args: str, timeout: float = 120) -> Completed:
    """Run `engine ARGS…` against *dsn* to completion without blocking the event loop (which may be serving a
    fake carrier the command talks to); killed if it outlives *timeout*."""
    env = {**os.environ, "ENGINE_DSN": dsn}
    env.pop("ENGINE_PUBLIC_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())


@dataclass
class Procs:
    """Every process a system test started; all are killed on exit."""

    env: dict[str, str]
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def spawn(self, *args: str, **extra_env: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine", *args,
            env={**self.env, **extra_env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    async def worker(self, *flags: str) -> asyncio.subprocess.Process:
        return await self.spawn("worker", *flags)

    async def stop(self, proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.returncode is None:
            proc.send_signal(sig)
        return await asyncio.wait_for(proc.wait(), timeout)


@asynccontextmanager
async def processes(dsn: str, **env: str) -> AsyncIterator[Procs]:
    base = {**os.environ, "ENGINE_DSN": dsn, **env}
    procs = Procs(base)
    try:
        yield procs
    finally:
        for p in procs.procs:
            if p.returncode is None:
                p.kill()
        for p in procs.procs:
            await p.wait()


async def start_carrier(procs: Procs, *args: str) -> str:
    """Start `engine fake-carrier` on a free port; returns its base URL once it is listening."""
    proc = await procs.spawn("fake-carrier", "--port", "0", *args)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert "listening on" in line, line
    return line.strip().rsplit(" ", 1)[1]


async def start_server(procs: Procs, port: int) -> None:
    """Start `engine serve` (webhooks) and wait until /healthz answers."""
    await procs.spawn("serve", "--port", str(port))

    async def healthy() -> bool:
        try:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    async with aiohttp.ClientSession() as s:
        await wait_until(healthy, timeout=30, interval=0.1, what="engine serve to answer /healthz")


async def carrier_stats(base_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(f"{base_url}/_fake/stats") as r:
        stats: dict[str, int] = orjson.loads(await r.read())
        return stats


async def wait_callbacks_posted(base_url: str, timeout: float = 180.0) -> dict[str, int]:
    """Wait until a carrier started with ``--callbacks final`` has posted (or given up on) the one status
    callback it owes for each message it accepted. The engine answers a callback after its status is
    committed, so then the database shows every reconciliation: a send that timed out (at most once: 'unknown')
    becomes 'delivered' if the carrier had it."""
    last: dict[str, int] = {}

    async def posted() -> bool:
        nonlocal last
        last = await carrier_stats(base_url)
        return last["callbacks_sent"] + last["callbacks_failed"] >= last["accepted"]

    await wait_until(posted, timeout=timeout, interval=0.25, what=lambda: f"the carrier's callbacks ({last})")
    return last


async def carrier_records(base_url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{base_url}/_fake/messages") as r:
        records: list[dict[str, Any]] = orjson.loads(await r.read())
        return records
