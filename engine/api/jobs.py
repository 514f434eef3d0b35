"""Notification jobs over the HTTP API: ``send_job``, ``job_status``, ``pause_job``, ``resume_job``, ``cancel_job``.

Registered with the Carousel calls (same authentication, parameters and errors: :mod:`engine.api.carousel`). An
application sees only its own jobs: another's job id is a 404 like an unknown one. Pausing, resuming or
canceling a job in a state that does not allow it (a finished job) is a 409. The job semantics (what pausing
does to messages already claimed, when a job is finished) are :mod:`engine.store.jobs`'s.

Also here: the periodic marking of finished jobs, which the engine's server runs (:func:`finish_jobs_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final

from engine.api import params as pp
from engine.api import recipients as rc
from engine.api.job_report import job_fields, job_report
from engine.config import Settings
from engine.errors import InvalidInput
from engine.httpserver.forms import Form
from engine.policy.admission import BodyLimits
from engine.store import jobs as store
from engine.store.carousel import ApiApp
from engine.store.database import DB_ERRORS, MAX_ID, Pool

__all__ = ["MAX_UPLOAD_BYTES", "UPLOADS", "JobsApi", "finish_jobs_loop", "parse_job_id"]

log = logging.getLogger(__name__)

UPLOADS: Final = {"send_job": ("csv",)}  # calls that take an uploaded file, and its field
MAX_UPLOAD_BYTES: Final = 32 * 1024 * 1024  # a send_job body (a CSV of a few hundred thousand rows)
MAX_JOB_RECIPIENTS: Final = 1_000_000  # recipients JSON entries per send_job
FINISH_EVERY: Final = 5.0  # seconds between two markings of finished jobs

Reply = dict[str, Any]


def parse_job_id(params: Mapping[str, str]) -> int:
    raw = pp.required(params, "job_id")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise InvalidInput("job_id", f"{raw[:40]!r} is not a job id")
    return int(raw)


class JobsApi:
    """The job calls; `calls` maps their names to handlers taking (app, params)."""

    def __init__(self, pool: Pool, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.calls: dict[str, Callable[[ApiApp, pp.Params], Awaitable[Reply]]] = {
            "send_job": self.send_job,
            "job_status": self.job_status,
            "pause_job": self.pause_job,
            "resume_job": self.resume_job,
            "cancel_job": self.cancel_job,
        }

    def _plan(self, app: ApiApp, p: pp.Params, template: str, skip_invalid: bool) -> tuple[rc.JobPlan, str | None]:
        """Every recipient checked (an uploaded or posted CSV, or the recipients JSON); the plan and the uploaded
        file's name. CPU work for large jobs: run in a thread, off the event loop."""
        upload = p.files.get("csv") if isinstance(p, Form) else None
        text = upload.data if upload is not None else p.get("csv")
        given = pp.optional(p, "recipients")
        if (text is None) == (given is None):
            raise InvalidInput("recipients", "send either recipients (JSON) or a csv file, exactly one of them")
        limits = BodyLimits(max_chars=self.settings.max_body_chars, max_segments=self.settings.max_segments)
        if given is not None:
            rows = rc.json_rows(pp.parse_recipients(given, limit=MAX_JOB_RECIPIENTS))
            param, what = "recipients", "recipient"
        else:
            content = rc.decode(text, "csv") if isinstance(text, bytes) else (text or "").removeprefix("\ufeff")
            rows = rc.read_csv(content, template, phone_column=pp.optional(p, "phone_column") or "phone")
            param, what = "csv", "line"
        plan = rc.plan_job(template, rows, app.rules, limits)
        rc.require_valid(plan, skip_invalid=skip_invalid, param=param, what=what)
        return plan, None if upload is None else upload.filename.replace("\x00", "")[:255]

    async def send_job(self, app: ApiApp, p: pp.Params) -> Reply:
        """Validate every recipient, then queue the job and its messages in one transaction."""
        template = p.get("template")
        if template is None:
            raise InvalidInput("template", "is required")
        pp.validate_body("template", template, max_chars=self.settings.max_body_chars)
        tag = pp.validate_tag(p)
        now = self.clock()
        on = pp.parse_on(p, now)
        notification = pp.parse_notification(p, now, on)
        skip_invalid = pp.parse_bool(p, "skip_invalid")
        label = pp.optional(p, "name")
        if label is not None and len(label) > 255:
            raise InvalidInput("name", "at most 255 characters")
        plan, filename = await asyncio.to_thread(self._plan, app, p, template, skip_invalid)
        spec = store.JobSpec("api", label or filename, template, tag, on, notification)
        created = await store.create_job(
            self.pool, app.id, spec, [store.JobMessage(m.recipient, m.parts) for m in plan.messages])
        return {"job_id": str(created.id), "recipients": len(plan.messages), "messages": created.messages,
                "skipped": [s.as_dict() for s in plan.skipped]}

    async def job_status(self, app: ApiApp, p: pp.Params) -> Reply:
        return job_report(await store.job_snapshot(self.pool, parse_job_id(p), app.id))

    async def pause_job(self, app: ApiApp, p: pp.Params) -> Reply:
        job, changed = await store.pause_job(self.pool, parse_job_id(p), app.id)
        return {**job_fields(job), "paused_count": changed}

    async def resume_job(self, app: ApiApp, p: pp.Params) -> Reply:
        job, changed = await store.resume_job(self.pool, parse_job_id(p), app.id)
        return {**job_fields(job), "resumed_count": changed}

    async def cancel_job(self, app: ApiApp, p: pp.Params) -> Reply:
        job, changed = await store.cancel_job(self.pool, parse_job_id(p), app.id)
        return {**job_fields(job), "canceled_count": changed}


async def finish_jobs_loop(pool: Pool, stop: asyncio.Event, every: float = FINISH_EVERY) -> None:
    """Mark finished jobs every *every* seconds until *stop* (a job is also marked whenever its status is read)."""
    while not stop.is_set():
        try:
            await store.finish_jobs(pool)
        except DB_ERRORS as exc:
            log.warning("marking finished jobs failed (%s); retrying", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
