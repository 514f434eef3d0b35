"""What a benchmark round cost: CPU seconds per process (engine, carrier, PostgreSQL, the benchmark itself, the
whole machine), peak and current memory, and a description of the machine the figures come from.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil

if TYPE_CHECKING:  # processes imports tree_cpu from here
    from benchmarks.processes import EngineProcs


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
