"""`engine job list|status|pause|resume|cancel`: notification jobs as operators see them (any application's).

What the states mean and what pausing does to messages already taken by a worker: engine/store/jobs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers

POLL_SECONDS: Final = 1.0  # how often a progress bar reads the job's status (each read counts its messages)


def register(sub: Subparsers) -> None:
    job = sub.add_parser("job", help="notification jobs: list, status, pause, resume, cancel").add_subparsers(
        dest="action", required=True)
    p = job.add_parser("list", help="the newest jobs with their state and progress")
    _common(p)
    p.add_argument("--app", metavar="NAME", help="only this application's jobs")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default 20)")
    p.add_argument("--json", action="store_true")
    p = job.add_parser("status", help="a job's counts by state and status, rate and ETA")
    _common(p)
    p.add_argument("job_id", type=int, metavar="ID")
    p.add_argument("--watch", action="store_true", help="show a live progress bar until the job is finished")
    p.add_argument("--json", action="store_true")
    for action, text in (("pause", "pause a job: its queued messages wait (those a worker took may still go)"),
                         ("resume", "resume a paused job"),
                         ("cancel", "cancel a job: its queued messages become canceled")):
        p = job.add_parser(action, help=text)
        _common(p)
        p.add_argument("job_id", type=int, metavar="ID")
        p.add_argument("--json", action="store_true")


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    Console(soft_wrap=True).print(table)


_NUMERIC: Final = frozenset({"id", "total", "open", "messages"})


def print_report(report: dict[str, Any]) -> None:
    """A job_status report as tables: the job, then its messages by progress group, state and status."""
    from engine.progress import format_eta

    _table(f"job {report['job_id']}", ("field", "value"), [
        (k, report[k]) for k in ("app", "name", "source", "state", "total", "type", "category", "tag", "send_at",
                                 "created_at", "finished_at")
    ] + [("final", report["final"]), ("rate", f"{report['rate']} msg/s"),
         ("capacity", None if report["capacity_per_s"] is None else f"{report['capacity_per_s']} msg/s"),
         ("ETA", format_eta(report["eta_seconds"]))])
    _table("messages", ("group", "messages"), [(k, f"{v:,}") for k, v in report["counts"].items() if v])
    _table("by state / Carousel status", ("state", "messages"),
           [(k, f"{v:,}") for k, v in report["by_state"].items()]
           + [(f"status {k}", f"{v:,}") for k, v in report["by_status"].items() if v])


async def watch(pool: Any, job_id: int, description: str, stop: asyncio.Event | None = None) -> dict[str, Any]:
    """A live progress bar of the job until it is finished (or *stop* is set); its last status report."""
    from engine.api.job_report import job_report
    from engine.progress import JobProgress, ProgressLine
    from engine.store import jobs

    report = job_report(await jobs.job_snapshot(pool, job_id))
    with JobProgress(report["total"], description) as bar:
        while True:
            c = report["counts"]
            bar.update(ProgressLine(report["final"], c["queued"], c["sent"], c["delivered"], c["failed"],
                                    report["rate"], report["eta_seconds"], report["state"]))
            if report["finished_at"] is not None or (stop is not None and stop.is_set()):
                return report
            if stop is None:
                await asyncio.sleep(POLL_SECONDS)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            report = job_report(await jobs.job_snapshot(pool, job_id))


async def _cmd_job(settings: Settings, args: argparse.Namespace) -> int:
    from engine.api.job_report import job_fields, job_report
    from engine.cli.common import _stop_on_signals
    from engine.store import admin, jobs

    async def go(pool: Any) -> int:
        if args.action == "list":
            app_id = (await admin.get_app(pool, args.app)).id if args.app else None
            found = await jobs.list_jobs(pool, app_id, max(1, args.limit))
            if args.json:
                _print_json([{**job_fields(j), "open": j.open} for j in found])
            elif not found:
                print("no jobs")
            else:
                _table("jobs (newest first)", ("id", "app", "name", "source", "state", "total", "open", "created"),
                       [(j.id, j.app, j.name, j.source, j.state, f"{j.total:,}", f"{j.open or 0:,}",
                         f"{j.created_at:%Y-%m-%d %H:%M:%S}") for j in found])
            return 0
        if args.action == "status":
            if args.watch:
                stop = asyncio.Event()
                _stop_on_signals(stop)
                report = await watch(pool, args.job_id, f"job {args.job_id}", stop)
            else:
                report = job_report(await jobs.job_snapshot(pool, args.job_id))
            if args.json:
                _print_json(report)
            else:
                print_report(report)
            return 0
        change = {"pause": jobs.pause_job, "resume": jobs.resume_job, "cancel": jobs.cancel_job}[args.action]
        job, changed = await change(pool, args.job_id)
        if args.json:
            _print_json({**job_fields(job), f"{_DONE[args.action]}_count": changed})
        else:
            print(f"job {job.id} is {job.state}: {changed:,} queued messages {_DONE[args.action]}")
        return 0

    return await _with_db(settings, go)


_DONE: Final = {"pause": "paused", "resume": "resumed", "cancel": "canceled"}

COMMANDS: dict[str, Handler] = {"job": _cmd_job}
