"""`engine worker --processes N`: N worker processes on this machine, supervised.

Each child is a plain `engine worker` (its own event loop, its own core); DID leases in Postgres
keep every DID's pacing in one process. SIGTERM/SIGINT are forwarded so children drain; a child
that dies unexpectedly is restarted after a short, growing delay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

MAX_RESTART_DELAY = 30.0


def child_env(processes: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: ours, plus ENGINE_EXPECTED_WORKERS = at least *processes* (pure), so siblings
    started together split the DIDs from the start (Settings.expected_workers). A larger value already set (more
    workers on other machines) is kept; an unparsable one is left for the child's settings to reject."""
    env = dict(environ)
    raw = env.get("ENGINE_EXPECTED_WORKERS", "")
    try:
        current = int(raw) if raw else 1
    except ValueError:
        return env
    env["ENGINE_EXPECTED_WORKERS"] = str(max(processes, current))
    return env


def child_argv(argv: Sequence[str]) -> list[str]:
    """The worker command line without `--processes N` / `--processes=N` (pure)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        out.append(arg)
    return out


async def supervise(processes: int, argv: Sequence[str], *, drain_timeout: float = 60.0) -> int:
    """Run *processes* children of `python -m engine <argv>` until SIGTERM/SIGINT; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    children: dict[int, asyncio.subprocess.Process] = {}
    env = child_env(processes, os.environ)

    async def keep(slot: int) -> int:
        delay = 0.5
        while True:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "engine", *argv, env=env)
            children[slot] = proc
            code = await proc.wait()
            if stop.is_set():
                return code
            log.error("worker process %d exited with %s; restarting in %.1fs", slot, code, delay)
            await asyncio.sleep(delay)
            delay = min(MAX_RESTART_DELAY, delay * 2)

    tasks = [asyncio.create_task(keep(i)) for i in range(processes)]
    await stop.wait()
    for proc in children.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    try:
        codes = await asyncio.wait_for(asyncio.gather(*tasks), drain_timeout)
    except TimeoutError:
        for proc in children.values():
            if proc.returncode is None:
                proc.kill()
        return 1
    return max((c for c in codes if c is not None), default=0)
