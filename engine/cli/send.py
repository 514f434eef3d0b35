"""`engine send`: a CSV and a template become a job (every row checked first, all queued in one transaction with
COPY), then a live progress bar until the job is finished (unless --detach)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from engine.cli.common import _common, _print_json, _stop_on_signals, _with_db
from engine.config import Settings
from engine.errors import EngineError, InvalidInput

if TYPE_CHECKING:
    from engine.api.recipients import JobPlan
    from engine.cli.common import Handler, Subparsers

SHOWN: Final = 50  # invalid lines printed (--json lists every one)
_FLAGS: Final = {"on": "--on", "tag": "--tag", "type": "--type", "category": "--category", "valid_for": "--valid-for",
                 "template": "--template"}


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "send", help="send a template to every row of a CSV as one job, with a live progress bar",
        description="Every row is checked first (phone number, a value for each {{placeholder}}, the message's "
        "length); invalid rows are reported by line number and nothing is queued, unless --skip-invalid.")
    _common(p)
    p.add_argument("--app", metavar="NAME", required=True, help="the sending application")
    p.add_argument("--csv", metavar="FILE", required=True, type=Path,
                   help="UTF-8 CSV with a header line: the phone column and one column per placeholder "
                   "(delimiter , ; TAB or |, read from the header line)")
    p.add_argument("--template", metavar="TEXT", required=True, help="the message, with {{column}} placeholders")
    p.add_argument("--phone-column", metavar="NAME", default="phone", help="the phone column (default phone)")
    p.add_argument("--on", metavar="WHEN", help="when to send (2026-09-02 09:00 EST, tomorrow, 16:30, …); default now")
    p.add_argument("--tag", metavar="T", help="conversation tag of every message")
    p.add_argument("--type", metavar="T", help="a free label (registration, reminder, …)")
    p.add_argument("--category", choices=["transactional", "marketing"], help="default transactional")
    p.add_argument("--valid-for", metavar="DURATION", help="lifetime from when due (90m, 2h, 1d, PT2H)")
    p.add_argument("--skip-invalid", action="store_true", help="queue the valid rows and report the others")
    p.add_argument("--detach", action="store_true", help="queue the job and return; no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object: job_id, counts, skipped lines")


def _flag_error(exc: InvalidInput) -> EngineError:
    """The same error, naming the command's flag instead of the API's parameter."""
    flag = _FLAGS.get(exc.param, exc.param)
    return EngineError(f"{flag}: {str(exc).removeprefix(exc.param + ': ')}")


def _report_invalid(plan: JobPlan, path: Path, as_json: bool) -> None:
    if as_json:
        _print_json({"error": f"{len(plan.skipped)} of {plan.rows} rows of {path.name} cannot be sent; "
                     "nothing was queued", "invalid": [s.as_dict() for s in plan.skipped]})
        return
    print(f"error: {len(plan.skipped):,} of {plan.rows:,} rows of {path.name} cannot be sent; nothing was queued "
          "(--skip-invalid sends the others):", file=sys.stderr)
    for s in plan.skipped[:SHOWN]:
        print(f"  line {s.line}: {s.problem}", file=sys.stderr)
    if len(plan.skipped) > SHOWN:
        print(f"  … and {len(plan.skipped) - SHOWN:,} more (--json lists them all)", file=sys.stderr)


async def _cmd_send(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from engine.api import params as pp
    from engine.api import recipients as rc
    from engine.api.job_report import job_report
    from engine.cli.jobs import watch
    from engine.policy.admission import BodyLimits
    from engine.store import carousel, jobs

    path: Path = args.csv
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EngineError(f"--csv: cannot read {path}: {exc.strerror or exc}") from None
    limits = BodyLimits(max_chars=settings.max_body_chars, max_segments=settings.max_segments)
    now = datetime.now(UTC)
    flags = {"on": args.on, "tag": args.tag, "type": args.type, "category": args.category,
             "valid_for": args.valid_for}
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        template = pp.validate_body("template", args.template, max_chars=limits.max_chars)
        on = pp.parse_on(given, now)
        notification = pp.parse_notification(given, now, on)
        tag = pp.validate_tag(given)
        text = rc.decode(data, "--csv")
        rows = rc.read_csv(text, template, phone_column=args.phone_column, param="--csv")
    except InvalidInput as exc:
        raise _flag_error(exc) from None

    async def go(pool: Any) -> int:
        app = await carousel.app_by_name(pool, args.app)
        plan = rc.plan_job(template, rows, app.rules, limits)
        if plan.skipped and not args.skip_invalid:
            _report_invalid(plan, path, args.json)
            return 2
        if not plan.messages:
            raise EngineError(f"--csv: {path.name} has no row that can be sent")
        spec = jobs.JobSpec("csv", path.name, template, tag, on, notification)
        created = await jobs.create_job(pool, app.id, spec, [jobs.JobMessage(m.recipient, m.parts)
                                                             for m in plan.messages])
        print(f"job {created.id}: {created.messages:,} messages queued for {app.name} from {path.name}"
              + (f"; {len(plan.skipped):,} invalid lines skipped" if plan.skipped else ""), file=sys.stderr)
        if not args.json:  # --json lists them all at the end
            for s in plan.skipped[:SHOWN]:
                print(f"  skipped line {s.line}: {s.problem}", file=sys.stderr)
        if args.detach:
            report = job_report(await jobs.job_snapshot(pool, created.id))
        else:
            stop = asyncio.Event()
            _stop_on_signals(stop)
            report = await watch(pool, created.id, f"job {created.id}", stop)
            if report["finished_at"] is None:
                print(f"stopped watching; job {created.id} goes on (engine job status {created.id})",
                      file=sys.stderr)
        if args.json:
            _print_json({**report, "recipients": len(plan.messages), "messages": created.messages,
                         "skipped": [s.as_dict() for s in plan.skipped]})
        elif not args.detach:
            c = report["counts"]
            print(f"job {created.id} {report['state']}: " + ", ".join(f"{k} {v:,}" for k, v in c.items() if v))
        else:
            print(f"job {created.id} queued (engine job status {created.id})")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"send": _cmd_send}
