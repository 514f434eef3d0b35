"""Jobs: each job's live progress (counts, rate, ETA, state) with pause/resume/cancel, and starting a job from an
uploaded CSV and a template.

Starting is two steps. The upload is checked exactly as ``engine send`` and the ``send_job`` call check it
(:mod:`engine.api.recipients`: phone, placeholders, length and segments with the app's smart encoding) and the
operator sees the first rendered messages with their segment counts and every invalid line by number; nothing is
queued. The checked plan waits in memory (per session, a few minutes, one at a time) until the operator confirms
(choosing to skip the invalid lines when there are some); then the job is queued in one transaction.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from engine.api import params as pp
from engine.api import recipients as rc
from engine.api.job_report import job_report
from engine.console.views import CSRF, FORM, Deps, form, render, see_other
from engine.errors import EngineError, InvalidInput
from engine.httpserver.forms import Form
from engine.policy.admission import BodyLimits
from engine.store import admin, carousel
from engine.store import jobs as store

__all__ = ["Draft", "JobPages"]

LISTED: Final = 30  # jobs on the page (the newest)
LIVE: Final = 10  # unfinished jobs whose counts the list shows live
PREVIEW: Final = 10  # rendered messages shown before confirming
SHOWN_INVALID: Final = 100  # invalid lines listed
DRAFT_SECONDS: Final = 900.0
MAX_DRAFTS: Final = 8  # checked uploads held at once (each up to a 32 MB file's plan); the oldest go first
_OPTIONAL: Final = ("on", "tag", "type", "category", "valid_for")
_DONE: Final = {"pause": "job-paused", "resume": "job-resumed", "cancel": "job-canceled"}


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked upload waiting for the operator's confirmation."""

    key: str
    app_id: int
    app: str
    spec: store.JobSpec
    plan: rc.JobPlan
    expires: float


class JobPages:
    def __init__(self, deps: Deps, clock: Callable[[], float] = time.monotonic) -> None:
        self.deps = deps
        self.clock = clock
        self._drafts: dict[str, Draft] = {}  # session CSRF token -> its one draft

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/jobs", self.jobs, name="jobs"),
            web.get("/jobs/live", self.jobs_live, name="jobs-live"),
            web.post("/jobs/preview", self.preview, name="jobs-preview"),
            web.post("/jobs/start", self.start, name="jobs-start"),
            web.get(r"/jobs/{job_id:\d{1,18}}", self.job, name="job"),
            web.get(r"/jobs/{job_id:\d{1,18}}/live", self.job_live, name="job-live"),
            web.post(r"/jobs/{job_id:\d{1,18}}/{action:pause|resume|cancel}", self.change, name="job-change"),
        ]

    # -- progress ------------------------------------------------------------------------------------------------

    async def _listing(self) -> list[dict[str, Any]]:
        """The newest jobs; the unfinished ones (a few) with their live report."""
        listed = await store.list_jobs(self.deps.pool, limit=LISTED)
        rows: list[dict[str, Any]] = []
        live = 0
        for job in listed:
            report = None
            if job.finished_at is None and live < LIVE:
                live += 1
                try:
                    report = job_report(await store.job_snapshot(self.deps.pool, job.id))
                except EngineError:
                    report = None
            rows.append({"job": job, "report": report})
        return rows

    async def jobs(self, request: web.Request, *, error: str | None = None, status: int = 200,
                   typed: dict[str, str] | None = None) -> web.Response:
        apps = await admin.list_apps(self.deps.pool)
        return await render(request, "jobs.html", {
            "rows": await self._listing(), "apps": apps, "error": error, "typed": typed or {},
            "draft": self._draft(request),
        }, nav="jobs", status=status)

    async def jobs_live(self, request: web.Request) -> web.Response:
        return await render(request, "_jobs_live.html", {"rows": await self._listing()})

    async def _report(self, request: web.Request) -> dict[str, Any]:
        try:
            return job_report(await store.job_snapshot(self.deps.pool, int(request.match_info["job_id"])))
        except EngineError:
            raise web.HTTPNotFound(text="no such job") from None

    async def job(self, request: web.Request) -> web.Response:
        return await render(request, "job.html", {"r": await self._report(request)}, nav="jobs")

    async def job_live(self, request: web.Request) -> web.Response:
        return await render(request, "_job_live.html", {"r": await self._report(request)})

    async def change(self, request: web.Request) -> web.StreamResponse:
        job_id = int(request.match_info["job_id"])
        action = request.match_info["action"]
        do = {"pause": store.pause_job, "resume": store.resume_job, "cancel": store.cancel_job}[action]
        try:
            await do(self.deps.pool, job_id)
        except EngineError as exc:
            return await render(request, "job.html", {"r": await self._report(request), "error": str(exc)},
                                nav="jobs", status=409)
        return see_other(request, f"/console/jobs/{job_id}?done={_DONE[action]}")

    # -- starting a job ------------------------------------------------------------------------------------------

    def _draft(self, request: web.Request) -> Draft | None:
        now = self.clock()
        self._drafts = {k: d for k, d in self._drafts.items() if d.expires > now}
        return self._drafts.get(request.get(CSRF, ""))

    async def preview(self, request: web.Request) -> web.Response:
        """Check the upload and show what would be sent; nothing is queued."""
        fields = form(request)
        read = request.get(FORM)
        upload = read.files.get("csv") if isinstance(read, Form) else None
        typed = {k: v for k, v in fields.items() if k != "csrf_token"}
        try:
            if upload is None or not upload.data:
                raise InvalidInput("csv", "choose a CSV file (a header line naming the phone column)")
            app = await carousel.app_by_name(self.deps.pool, fields.get("app", ""))
            limits = BodyLimits(max_chars=self.deps.settings.max_body_chars,
                                max_segments=self.deps.settings.max_segments)
            template = pp.validate_body("template", fields.get("template", ""), max_chars=limits.max_chars)
            given = {k: v.strip() for k in _OPTIONAL if (v := fields.get(k, "")).strip()}
            now = datetime.now(UTC)
            on = pp.parse_on(given, now)
            notification = pp.parse_notification(given, now, on)
            tag = pp.validate_tag(given)
            phone_column = fields.get("phone_column", "").strip() or "phone"

            def check() -> rc.JobPlan:  # CPU work for a large file: off the event loop
                rows = rc.read_csv(rc.decode(upload.data, "csv"), template, phone_column=phone_column)
                return rc.plan_job(template, rows, app.rules, limits)

            plan = await asyncio.to_thread(check)
        except EngineError as exc:
            return await self.jobs(request, error=str(exc), status=400, typed=typed)
        name = upload.filename.replace("\x00", "")[:255] or None
        key = secrets.token_urlsafe(16)
        draft = Draft(key, app.id, app.name, store.JobSpec("csv", name, template, tag, on, notification), plan,
                      self.clock() + DRAFT_SECONDS)
        self._draft(request)  # (drops the expired ones)
        self._drafts.pop(request.get(CSRF, ""), None)
        while len(self._drafts) >= MAX_DRAFTS:
            self._drafts.pop(next(iter(self._drafts)))
        self._drafts[request.get(CSRF, "")] = draft
        return await self._show(request, draft)

    async def _show(self, request: web.Request, draft: Draft, error: str | None = None) -> web.Response:
        plan = draft.plan
        return await render(request, "job_preview.html", {
            "d": draft, "first": plan.messages[:PREVIEW], "invalid": plan.skipped[:SHOWN_INVALID],
            "segments": sum(m.segments for m in plan.messages), "parts": sum(len(m.parts) for m in plan.messages),
            "error": error,
        }, nav="jobs", status=400 if error else 200)

    async def start(self, request: web.Request) -> web.StreamResponse:
        """Queue the confirmed draft (the invalid lines skipped only when the operator said so)."""
        fields = form(request)
        draft = self._draft(request)
        if draft is None or not secrets.compare_digest(draft.key, fields.get("draft", "")):
            return await self.jobs(request, error="That preview has expired or was replaced: upload the file again.",
                                   status=409)
        plan = draft.plan
        if plan.skipped and fields.get("skip_invalid") != "yes":
            return await self._show(request, draft, f"{len(plan.skipped):,} of {plan.rows:,} lines cannot be sent: "
                                    "tick “skip the invalid lines” to queue the others, or fix the file.")
        rc.require_valid(plan, skip_invalid=True, param="csv")  # (the preview offers no button when none is valid)
        self._drafts.pop(request.get(CSRF, ""), None)
        created = await store.create_job(self.deps.pool, draft.app_id, draft.spec,
                                         [store.JobMessage(m.recipient, m.parts) for m in draft.plan.messages])
        return see_other(request, f"/console/jobs/{created.id}?done=job-started")
