"""Apps: module texts with a live segment counter, split mode, smart encoding, flood limit, loop detection and the
other settings of ``engine app set``; keywords; the API key (rotate); gateway URL and dead-lettered callbacks.

Settings are checked by the same function as ``engine app set`` (:func:`engine.app_settings.validate_app_changes`)
and written by the same store function (:func:`engine.store.admin.update_app`); keywords by the API's own checks
and store functions. Segment counts come from :func:`engine.segment.analyze`, the function every door bills with.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web

from engine.api import params as pp
from engine.app_settings import (
    MAX_TEXT,
    SPLIT_MODES,
    TEXT_FLAGS,
    format_flood_limit,
    format_period,
    format_retention,
    validate_app_changes,
)
from engine.console.views import Deps, form, int_param, render, see_other
from engine.errors import EngineError, InvalidInput
from engine.inbound.chain import DEFAULT_HELP, DEFAULT_NOMATCH, DEFAULT_OPTOUT
from engine.policy.lifetime import format_duration
from engine.segment import analyze
from engine.store import admin, keywords
from engine.store import console as store

__all__ = ["SETTINGS", "TEXTS", "AppPages", "current_values"]

DEAD_PAGE: Final = 20
HELP_TEXT_ADVICE: Final = 160  # carriers recommend a HELP answer in one SMS
# (setting, label, hint, what is sent when it is empty: the module chain's default, or nothing)
TEXTS: Final = (
    ("help_text", "HELP answer", "Sent when a phone texts HELP (or INFO).", DEFAULT_HELP),
    ("welcome_text", "Welcome text", "Sent once, to a phone's first message to this app.", None),
    ("optout_text", "Opt-out confirmation", "Sent on STOP (the only message an opted-out phone ever gets).",
     DEFAULT_OPTOUT),
    ("optin_text", "Opt-in confirmation", "Sent on START.", None),
    ("nomatch_text", "No-match reply", "Sent when an MO matches no keyword.", DEFAULT_NOMATCH),
)
# (setting, label, kind, hint): kind is text, select:<choices> or yesno.
SETTINGS: Final = (
    ("gateway_url", "Gateway URL", "text", "Where callbacks are POSTed (http or https); empty: none."),
    ("split_mode", "Split mode", "select", "How long bodies are cut for carriers that take single SMS only."),
    ("smart_encoding", "Smart encoding", "yesno", "Replace look-alike characters (curly quotes, …) with GSM-7 ones."),
    ("flood_limit", "Flood limit", "text", "At most N messages to one phone per period: 10/1h, 5/10m, or off."),
    ("dedup_window", "Duplicate window (s)", "text", "The same body to the same phone within it is suppressed."),
    ("callback_concurrency", "Callback concurrency", "text", "Callback requests in flight to the gateway."),
    ("smsc_limit_per_min", "Pool cap (segments/min)", "text", "Caps the whole DID pool (a 10DLC campaign), or off."),
    ("session_idle", "Session idle", "text", "A session ends this long after the phone's last MO (24h)."),
    ("loop_max_replies", "Loop: replies", "text", "Auto-reply loop: automatic replies allowed …"),
    ("loop_window", "Loop: window", "text", "… within this period (60s)."),
    ("loop_max_repeats", "Loop: repeats", "text", "… or the same MO this many times in a row (5)."),
    ("loop_cooldown", "Loop: cool-down", "text", "Automatic replies then stop this long (1h; at least the window)."),
    ("valid_for", "Default lifetime", "text", "A message still unsent this long after it was due expires (2h; off)."),
    ("retention", "Retention", "text", "Final messages and delivered callbacks are purged after this (18mo, 2y, 90d)."),
    ("quiet_hours", "Quiet hours", "yesno", "Hold marketing messages outside the recipient's local hours."),
    ("quiet_window", "Marketing window", "text", "HH:MM-HH:MM local; narrows the law's 08:00-21:00."),
)
SETTING_NAMES: Final = tuple(name for name, *_ in TEXTS) + tuple(name for name, *_ in SETTINGS)


def current_values(detail: dict[str, Any]) -> dict[str, str]:
    """Each setting as ``engine app set`` takes it, for the form (and to tell what an operator changed)."""
    values = {name: detail[name] or "" for name in TEXT_FLAGS}
    limit = detail["smsc_limit_per_min"]
    lifetime = detail["valid_for_seconds"]
    values.update({
        "gateway_url": detail["gateway_url"] or "",
        "split_mode": detail["split_mode"],
        "smart_encoding": "yes" if detail["smart_encoding"] else "no",
        "flood_limit": format_flood_limit(detail["flood_limit"], detail["flood_seconds"]),
        "dedup_window": f"{detail['dedup_seconds']:g}",
        "callback_concurrency": str(detail["callback_concurrency"]),
        "smsc_limit_per_min": "off" if limit is None else str(limit),
        "session_idle": format_period(detail["session_idle_seconds"]),
        "loop_max_replies": str(detail["loop_max_replies"]),
        "loop_window": format_period(detail["loop_window_seconds"]),
        "loop_max_repeats": str(detail["loop_max_repeats"]),
        "loop_cooldown": format_period(detail["loop_cooldown_seconds"]),
        "valid_for": "off" if lifetime is None else format_duration(timedelta(seconds=lifetime)),
        "retention": format_retention(detail["retention"]),
        "quiet_hours": "yes" if detail["quiet_hours"] else "no",
        "quiet_window": detail["quiet_window"],
    })
    return values


def _typed(fields: dict[str, str]) -> dict[str, str]:
    """What the form sent for each setting (a browser sends a textarea's line ends as CR LF: kept as LF)."""
    return {name: fields[name].replace("\r\n", "\n") for name in SETTING_NAMES if name in fields}


def placeholder(default: str | None, app: str) -> str:
    """What the field shows when empty: what is sent instead (the module chain's default text), or that nothing is."""
    return "Nothing is sent while this is empty." if default is None else "Default: " + default.replace("{app}", app)


def segment_summary(text: str, *, smart: bool, app: str) -> dict[str, Any]:
    """What the counter shows for *text* as it goes out ({app} becomes the app's name, as the module chain does):
    encoding, segments, characters, and smart encoding's replacements."""
    text = text.replace("{app}", app)
    info = analyze(text, smart=smart)
    return {
        "encoding": "UCS-2" if info.is_unicode else "GSM-7", "segments": info.segments, "units": info.units,
        "characters": len(text), "per_segment": info.per_segment, "too_long": len(text) > MAX_TEXT,
        "replacements": [f"{old} → {new}" for old, new in info.replacements],
    }


class AppPages:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/apps", self.list, name="apps"),
            web.get("/apps/{name}", self.detail, name="app"),
            web.post("/apps/{name}/settings", self.save, name="app-settings"),
            web.post("/apps/{name}/keywords", self.add_keyword, name="app-keyword-add"),
            web.post("/apps/{name}/keywords/remove", self.remove_keyword, name="app-keyword-remove"),
            web.post("/apps/{name}/rotate-key", self.rotate_key, name="app-rotate-key"),
            web.post("/apps/{name}/dead-letters/retry", self.retry, name="app-dead-retry"),
            web.post("/segments", self.segments, name="segments"),
        ]

    async def list(self, request: web.Request) -> web.Response:
        return await render(request, "apps.html", {"apps": await admin.list_apps(self.deps.pool)}, nav="apps")

    async def _detail(self, request: web.Request, name: str) -> dict[str, Any]:
        try:
            return await store.app_detail(self.deps.pool, name)
        except EngineError:
            raise web.HTTPNotFound(text=f"no application named {name!r}") from None

    async def detail(self, request: web.Request, *, status: int = 200, error: str | None = None,
                     typed: dict[str, str] | None = None, warning: str | None = None) -> web.Response:
        name = request.match_info["name"]
        detail = await self._detail(request, name)
        values = current_values(detail) | (typed or {})
        dead, cursor = await store.dead_letters(self.deps.pool, detail["id"], before=int_param(request, "dead_before"),
                                                limit=DEAD_PAGE)
        smart = values["smart_encoding"] == "yes"
        counters = {field: segment_summary(values[field], smart=smart, app=name) for field, *_ in TEXTS}
        placeholders = {field: placeholder(default, name) for field, _, _, default in TEXTS}
        return await render(request, "app.html", {
            "app": detail, "values": values, "texts": TEXTS, "settings": SETTINGS, "split_modes": SPLIT_MODES,
            "counters": counters, "dead": dead, "dead_cursor": cursor, "error": error,
            "new_key": self.deps.once.take(request, f"api_key:{name}"),
            "warning": warning, "max_text": MAX_TEXT, "placeholders": placeholders,
        }, nav="apps", status=status)

    async def save(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        detail = await self._detail(request, name)
        typed = _typed(form(request))
        current = current_values(detail)
        changed: dict[str, str | None] = {k: v for k, v in typed.items() if v != current.get(k)}
        if not changed:
            return see_other(request, f"/console/apps/{quote(name)}?done=nothing")
        try:
            changes = validate_app_changes(changed)
            await admin.update_app(self.deps.pool, name, changes)
        except EngineError as exc:
            return await self.detail(request, status=400, error=str(exc), typed=typed)
        help_text = changes.columns.get("help_text")
        if isinstance(help_text, str) and len(help_text) > HELP_TEXT_ADVICE:
            return await self.detail(request, warning=f"Saved. The HELP answer is {len(help_text)} characters; "
                                                      f"carriers recommend at most {HELP_TEXT_ADVICE}.")
        return see_other(request, f"/console/apps/{quote(name)}?done=saved")

    async def segments(self, request: web.Request) -> web.Response:
        """The live counter of one text field (htmx, as the operator types): ``?field=help_text&app=NAME``."""
        field = request.query.get("field", "")
        if field not in TEXT_FLAGS:
            raise web.HTTPBadRequest(text="field: not a module text")
        fields = form(request)
        text = fields.get(field, "").replace("\r\n", "\n")
        summary = segment_summary(text, smart=fields.get("smart_encoding", "no") == "yes",
                                  app=request.query.get("app", ""))
        return await render(request, "_segments.html", {"c": summary, "max_text": MAX_TEXT})

    async def add_keyword(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        detail = await self._detail(request, name)
        fields = form(request)
        try:
            if detail["smsc_id"] is None:
                raise InvalidInput("keyword", "the application has no SMSC")
            keyword = pp.normalize_keyword(fields.get("keyword", ""))
            mode = pp.parse_int(fields, "mode", 0, low=0, high=1)
            spec = keywords.KeywordSpec(keyword, mode, pp.parse_bool(fields, "auto_subscribe"),
                                        pp.parse_tags(fields, "auto_subscribe_tags"))
            errors = pp.keyword_errors(keyword) or await keywords.associate_keyword(
                self.deps.pool, store.app_for_keywords(detail), spec)
        except EngineError as exc:
            errors = [str(exc)]
        if errors:
            return await self.detail(request, status=400, error="; ".join(errors))
        return see_other(request, f"/console/apps/{quote(name)}?done=keyword-added#keywords")

    async def remove_keyword(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        detail = await self._detail(request, name)
        keyword = pp.normalize_keyword(form(request).get("keyword", ""))
        errors = await keywords.dissociate_keyword(self.deps.pool, store.app_for_keywords(detail), keyword)
        if errors:
            return await self.detail(request, status=400, error="; ".join(errors))
        return see_other(request, f"/console/apps/{quote(name)}?done=keyword-removed#keywords")

    async def rotate_key(self, request: web.Request) -> web.StreamResponse:
        """A new API key, shown once on the page this redirects to (never in a URL, never again); the old key stops
        working now."""
        name = request.match_info["name"]
        await self._detail(request, name)
        key = await admin.rotate_api_key(self.deps.pool, name)
        self.deps.forget_keys()  # this process's API cache at once; other API servers on the NOTIFY
        self.deps.once.put(request, f"api_key:{name}", key)
        return see_other(request, f"/console/apps/{quote(name)}?done=rotated#api-key")

    async def retry(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        detail = await self._detail(request, name)
        event_id = form(request).get("event_id", "")
        try:
            retried = await store.retry_dead_letter(self.deps.pool, detail["id"], event_id)
        except EngineError as exc:
            return await self.detail(request, status=400, error=str(exc))
        return see_other(request, f"/console/apps/{quote(name)}?done={'retried' if retried else 'not-dead'}#callbacks")
