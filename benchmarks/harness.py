"""Shared pieces of the throughput benchmarks: a PostgreSQL server, fresh databases, child processes, CPU.

Everything measured runs in its own process (fake carrier, engine, baseline worker and webhook); this
module only starts them, fills the queue, polls the database and reads the carrier's own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import psutil

from db.embedded import EmbeddedPostgres

_counter = itertools.count()
POLL_S = 0.25  # how often the benchmark polls the database for "all final"


def log(msg: str) -> None:
    """Progress goes to stderr: stdout is reserved for the result."""
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def postgres_server(dsn: str | None) -> AsyncIterator[str]:
    """*dsn* (an admin database on the server to use), or an embedded server in a temporary directory."""
    if dsn:
        yield dsn
        return
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-pg-"))
    server = EmbeddedPostgres(tmp / "pgdata")
    started = await asyncio.to_thread(server.start)
    try:
        yield started
    finally:
        await asyncio.to_thread(server.stop)
        # A large scenario leaves gigabytes of tables and WAL: nothing of a benchmark's server is kept.
        await asyncio.to_thread(shutil.rmtree, tmp, True)


@asynccontextmanager
async def fresh_database(server_dsn: str, prefix: str) -> AsyncIterator[str]:
    """CREATE DATABASE for one round (dropped afterwards); yields its DSN (not yet migrated)."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        # Flush the previous rounds' dirty pages now, so a checkpoint (its writes and the full-page images
        # after it) does not land inside this round; either side gets the same clean start.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    try:
        yield with_database(server_dsn, name)
    finally:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


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


async def carrier_get(base_url: str, what: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(f"{base_url}/_fake/{what}") as r:
        return orjson.loads(await r.read())


def cpu_seconds(pids: Sequence[int]) -> float:
    """user + system CPU seconds consumed so far by *pids* (children of theirs not included)."""
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


async def postgres_pid(server_dsn: str) -> int | None:
    """The postmaster's pid of the server behind *server_dsn* (its data directory's postmaster.pid), when local."""
    conn = await asyncpg.connect(server_dsn)
    try:
        data_dir: str = await conn.fetchval("SHOW data_directory")
    except asyncpg.PostgresError:  # not a superuser: the data directory is not ours to read
        return None
    finally:
        await conn.close()
    try:
        return int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu(pid: int | None) -> dict[int, float]:
    """CPU seconds so far of *pid* and every process under it, by pid ({} when unknown)."""
    if pid is None:
        return {}
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        out[p.pid] = t.user + t.system
    return out


def process_name(pid: int) -> str:
    """What a benchmark process is, from its command line: "engine run", "engine serve", "engine worker
    --processes N (supervisor)", "engine worker", "lean carrier", …"""
    try:
        args = psutil.Process(pid).cmdline()
    except psutil.Error:
        return f"pid {pid}"
    if "-m" in args:
        module, rest = args[args.index("-m") + 1], args[args.index("-m") + 2 :]
        if module == "engine":
            words = list(rest[:1])
            if "--processes" in rest:
                n = rest[rest.index("--processes") + 1]
                words += ["--processes", n] + (["(supervisor)"] if n != "1" else [])  # 1: no supervisor
            return "engine " + " ".join(words)
        if module == "benchmarks.lean_carrier":
            return "lean carrier"
        return str(module)
    return " ".join(args[:2])


def machine_busy() -> float:
    """CPU seconds all cores of the machine have spent busy so far (every process, ours or not)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class CpuWindow:
    """CPU of every process of a round over its measured window, per process and per second (cores)."""

    engine: dict[int, float]
    carrier_pid: int
    carrier: float
    postgres_pid: int | None
    postgres: dict[int, float]
    bench: float
    machine: float
    t: float

    @classmethod
    def start(cls, engine: EngineProcs, carrier_pid: int, postgres_pid: int | None) -> CpuWindow:
        own = psutil.Process().cpu_times()
        return cls(engine.cpu(), carrier_pid, cpu_seconds([carrier_pid]), postgres_pid, tree_cpu(postgres_pid),
                   own.user + own.system, machine_busy(), time.monotonic())

    def stop(self, engine: EngineProcs) -> dict[str, Any]:
        """The window's accounting: each engine process, the carrier, Postgres, this process and the whole machine
        (the other processes on it included), in CPU seconds and in cores (CPU seconds per second)."""
        window = max(time.monotonic() - self.t, 1e-9)
        own = psutil.Process().cpu_times()
        rows: list[tuple[str, float]] = []
        for pid, cpu in sorted(engine.cpu().items()):
            rows.append((process_name(pid), cpu - self.engine.get(pid, 0.0)))
        rows.append(("lean carrier" if process_name(self.carrier_pid) == "lean carrier" else "fake carrier",
                     cpu_seconds([self.carrier_pid]) - self.carrier))
        pg = tree_cpu_delta(self.postgres, tree_cpu(self.postgres_pid))
        if pg is not None:
            rows.append(("postgres (all backends)", pg))
        rows.append(("benchmark process (submits, polls)", own.user + own.system - self.bench))
        ours = sum(cpu for _, cpu in rows)
        machine = machine_busy() - self.machine
        return {
            "window_s": round(window, 3),
            "cores": os.cpu_count(),
            "processes": [{"process": name, "cpu_s": round(cpu, 3), "cores_busy": round(cpu / window, 3)}
                          for name, cpu in rows],
            "ours_cores_busy": round(ours / window, 3),
            "machine_cores_busy": round(machine / window, 3),  # every process on the machine, others' included
            "load_average_1m": round(os.getloadavg()[0], 2),
        }


def tree_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU used between two tree_cpu() snapshots by the processes alive at the second one (processes that
    exited in between are missed: a lower bound). None when the tree was unknown."""
    if not after:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of *values*; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def wait_all_final(
    conn: asyncpg.Connection, count_sql: str, total: int, procs: Sequence[asyncio.subprocess.Process],
    timeout: float,
) -> None:
    """Poll *count_sql* (counts final rows) until it reaches *total*; fail if a child dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = -1
    next_log = time.monotonic() + 5
    while True:
        done: int = await conn.fetchval(count_sql)
        if done >= total:
            return
        now = time.monotonic()
        for p in procs:
            if p.returncode is not None:
                raise RuntimeError(f"a benchmark process exited ({p.returncode}) with {done}/{total} final")
        if now > deadline:
            raise RuntimeError(f"timed out with {done}/{total} messages final")
        if now >= next_log and done != last:
            log(f"  {done}/{total} final")
            last = done
            next_log = now + 5
        # Each poll is a full scan of the table (the benchmark's cost, on the shared cores, for either side):
        # poll gently. The end time comes from max(final_at), not from when this poll saw it.
        await asyncio.sleep(POLL_S)


def recipients(count: int, seed: int = 5) -> list[tuple[str, str]]:
    """(recipient, body) pairs: valid NANP mobile-looking numbers and short GSM texts."""
    rng = random.Random(seed)
    areas = ["212", "312", "415", "617", "646", "718", "202", "303", "404", "512"]
    out = []
    for i in range(count):
        to = f"+1{rng.choice(areas)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        out.append((to, f"Reminder {i}: your hold is ready at Main Library until Friday."))
    return out


def did_numbers(count: int) -> list[str]:
    """*count* distinct valid sender numbers."""
    return [f"+1646{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


def latency_figures(created: dict[str, float], accepted: dict[str, float]) -> dict[str, float]:
    """p50/p99 of carrier accept time minus row creation time, in milliseconds, matched by sid."""
    lat = [(accepted[sid] - t) * 1000 for sid, t in created.items() if sid in accepted]
    return {
        "queue_to_carrier_p50_ms": round(percentile(lat, 50), 1),
        "queue_to_carrier_p99_ms": round(percentile(lat, 99), 1),
    }


def machine_info(postgres_version: str | None) -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        pgq = version("pgqueuer")
    except Exception:
        pgq = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "postgres": postgres_version,
        "pgqueuer": pgq,
    }


# ---- fast fills for the paced and backlog scenarios (SQL set operations, not submit_many) ----------

_DIDS_SQL = """
INSERT INTO engine_did (smsc_id, number, limit_per_min, burst)
SELECT $1, '+1646' || lpad((200 + i / 10000)::text, 3, '0') || lpad((i % 10000)::text, 4, '0'), $3, $4
FROM generate_series(0, $2 - 1) AS i
"""
_MESSAGES_SQL = """
INSERT INTO engine_outbound (app_id, recipient, body)
SELECT $1, '+1212' || (2000000 + i)::text,
       'Reminder ' || i || ': your hold is ready at Main Library until Friday.'
FROM generate_series(0, $2 - 1) AS i
"""


async def insert_dids_sql(conn: asyncpg.Connection, smsc_id: int, count: int, *, limit_per_min: int = 60,
                          burst: int = 1) -> None:
    """*count* DIDs (the numbers `did_numbers` gives) in one INSERT … SELECT generate_series."""
    if count > 100_000:
        raise ValueError("at most 100,000 DIDs (+1646 200..209 xxxx)")
    await conn.execute(_DIDS_SQL, smsc_id, count, limit_per_min, burst)


async def insert_messages_sql(conn: asyncpg.Connection, app_id: int, count: int) -> None:
    """*count* queued messages, due now, to distinct recipients (+1212 2xx xxxx), in one INSERT … SELECT."""
    if count > 8_000_000:
        raise ValueError("at most 8,000,000 distinct recipients")
    await conn.execute(_MESSAGES_SQL, app_id, count)
    await conn.execute("ANALYZE engine_outbound")


def vm_hwm_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of *pid* in MB from /proc/<pid>/status; None where that is unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def rss_mb(pid: int) -> float:
    """Current RSS of *pid* in MB (psutil)."""
    rss: int = psutil.Process(pid).memory_info().rss
    return round(rss / 2**20, 1)


async def wait_first_accept(carrier_url: str, procs: Sequence[asyncio.subprocess.Process], timeout: float) -> float:
    """Poll the carrier's stats until it has accepted something; returns the local time.time() seen then."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{carrier_url}/_fake/stats") as r:
                stats = orjson.loads(await r.read())
            if stats["accepted"] > 0:
                return time.time()
            for p in procs:
                if p.returncode is not None:
                    raise RuntimeError(f"a benchmark process exited ({p.returncode}) before the first send")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no message reached the carrier within {timeout}s")
            await asyncio.sleep(0.02)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after *timeout* seconds."""
    if proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
