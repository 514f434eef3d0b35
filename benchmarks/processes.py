"""The benchmarks' child processes: spawning and stopping them, the carrier and the engine under test, ports.

Everything measured runs in its own process (fake carrier, engine, baseline worker and webhook); a round starts
them through :func:`children`, which stops them all at its end and shows their logs when the round fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.resources import tree_cpu


def log(msg: str) -> None:
    """Progress goes to stderr: stdout is reserved for the result."""
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Children:
    """Child processes of one round; all are stopped (SIGTERM, then SIGKILL) on exit."""

    logdir: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    async def spawn(self, args: Sequence[str], env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        logfile = self.logdir / f"{len(self.procs)}-{args[1].replace('.', '_')}-{args[2]}.log"
        with logfile.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env={**os.environ, **(env or {})},
                stdout=asyncio.subprocess.PIPE, stderr=err,
            )
        self.procs.append(proc)
        self.logs.append(logfile)
        return proc

    def tail(self, lines: int = 15) -> str:
        out = []
        for path in self.logs:
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    async def stop_all(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.terminate()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
                await p.wait()


@asynccontextmanager
async def children() -> AsyncIterator[Children]:
    with tempfile.TemporaryDirectory(prefix="engine-bench-logs-") as tmp:
        kids = Children(Path(tmp))
        try:
            yield kids
        except BaseException:
            log("child process logs:\n" + kids.tail())
            raise
        finally:
            await kids.stop_all()


async def read_url_line(proc: asyncio.subprocess.Process, what: str, timeout: float = 60) -> str:
    """Wait for the child's 'listening on URL' line; returns the URL."""
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode().strip()
    if "listening on " not in line:
        raise RuntimeError(f"{what} did not start: {line!r}")
    return line.rsplit(" ", 1)[1]


CARRIERS = ("lean", "regular")


async def start_carrier(kids: Children, kind: str = "lean") -> str:
    """A carrier in its own process, final callbacks only, no callback delay: the lean benchmark carrier
    (`python -m benchmarks.lean_carrier`, the default: a load generator much cheaper than what it measures) or the
    regular fake carrier (`engine fake-carrier`, aiohttp, with everything tests use)."""
    if kind == "lean":
        proc = await kids.spawn(["-m", "benchmarks.lean_carrier", "--port", "0", "--callbacks", "final"])
    elif kind == "regular":
        proc = await kids.spawn(
            ["-m", "engine", "fake-carrier", "--port", "0", "--callbacks", "final", "--latency", "0"]
        )
    else:
        raise ValueError(f"unknown carrier {kind!r}; choose from {', '.join(CARRIERS)}")
    return await read_url_line(proc, f"{kind} carrier")


async def wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Poll *url* until it answers 200 (the child is up and serving)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class EngineProcs:
    """The engine under test: `engine run` (processes=0), or `engine serve` + `engine worker --processes N`."""

    procs: list[asyncio.subprocess.Process]
    base_url: str  # the HTTP side (webhooks, API, /healthz)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> dict[int, float]:
        """CPU so far of every engine process, worker children of the supervisor included."""
        out: dict[int, float] = {}
        for pid in self.pids:
            out.update(tree_cpu(pid))
        return out

    async def stop(self) -> None:
        for p in reversed(self.procs):  # workers first: they drain into a still-running webhook
            await stop_process(p)


def layout(processes: int) -> str:
    """How spawn_engine(processes=...) runs the engine, in words (for logs and figures)."""
    return "engine run" if processes <= 0 else f"engine serve + engine worker --processes {processes}"


async def spawn_engine(kids: Children, dsn: str, *, processes: int = 0, wait: bool = True) -> EngineProcs:
    """Start the engine against *dsn*: one `engine run` process (processes=0), or the HTTP side in `engine serve`
    and dispatch in `engine worker --processes N` (N worker processes under a supervisor; DID leases share the
    DIDs out). With wait=True, returns once /healthz answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {"ENGINE_DSN": dsn, "ENGINE_LOG_LEVEL": "WARNING"}
    if processes <= 0:
        procs = [await kids.spawn(["-m", "engine", "run", "--port", str(port)], env=env)]
    else:
        serve = await kids.spawn(["-m", "engine", "serve", "--port", str(port)], env=env)
        worker = await kids.spawn(
            ["-m", "engine", "worker", "--processes", str(processes)],
            env={**env, "ENGINE_PUBLIC_URL": base_url},  # the status callback URLs point at `serve`
        )
        procs = [serve, worker]
    if wait:
        await wait_http(f"{base_url}/healthz", procs[0])
    return EngineProcs(procs, base_url)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after *timeout* seconds."""
    if proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
