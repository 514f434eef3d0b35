"""The Carousel-compatible HTTP API: ``GET|POST /api/<call>`` with URL-encoded parameters, JSON replies.

Every call authenticates with ``api_key`` (stored hashed; looked up by hash, briefly cached), parses
its parameters with :mod:`engine.api.params` (400 naming the parameter), then runs one store
transaction (:mod:`engine.store.carousel`), so a failed call changes nothing. Errors are JSON
``{"error": message}``: 400 bad parameter, 401 api_key, 404 unknown call (or message), 409 no SMSC / carrier
account (or a resend refused), 502 carrier error, 500 server fault (logged with a traceback and an error id).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiohttp import web

from engine.api import openapi
from engine.api import params as pp
from engine.api.jobs import MAX_UPLOAD_BYTES, UPLOADS, JobsApi
from engine.api.numbers import NumbersApi, carrier_status, did_text, smsc_of
from engine.api.tracking import TrackingApi
from engine.config import Settings
from engine.errors import Conflict, InvalidInput, NotFound, ProviderError
from engine.httpserver.forms import Form, UnreadableBody, read_form
from engine.phone import to_e164
from engine.policy.admission import prepare
from engine.policy.lifetime import Notification
from engine.policy.quiet_hours import valid_zone
from engine.store import carousel as store
from engine.store import keywords as kw
from engine.store import lifetime, notify
from engine.store import subscriptions as subs
from engine.store.admin import hash_api_key
from engine.store.database import Pool
from engine.store.jobs import JobSpec

__all__ = ["ApiError", "CarouselApi"]

log = logging.getLogger(__name__)

JSON_TYPE: Final = "application/json"
CACHE_MAX: Final = 10_000
_CODE: Final = re.compile(r"[0-9]{6}", re.ASCII)
OPTIN_CODE_SECONDS: Final = 600  # a web opt-in code is valid 10 minutes …
OPTIN_MAX_TRIES: Final = 5  # … and locked after 5 wrong tries
MAX_SUBSCRIBER_SEND: Final = 100_001  # send_message tags=: above 100,000 subscribers, use a job

Reply = dict[str, Any]
Handler = Callable[[store.ApiApp, pp.Params], Awaitable[Reply]]


class ApiError(Exception):
    """An error reply with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON_TYPE)


def _now() -> datetime:
    return datetime.now(UTC)


async def _read_params(request: web.Request, read_timeout: float, uploads: tuple[str, ...] = ()) -> Form:
    """Query string, then form fields (which win); file uploads are ignored but for those named in *uploads*
    (then the body may be up to MAX_UPLOAD_BYTES)."""
    values = Form(dict(request.query.items()))
    if request.method == "POST" and request.body_exists:
        if uploads:
            request = request.clone(client_max_size=MAX_UPLOAD_BYTES)
        form = await read_form(request, timeout=read_timeout, uploads=uploads)
        values.update(form)
        values.files.update(form.files)
    return values


def _check_text(params: pp.Params) -> None:
    for name, value in params.items():
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise InvalidInput(name, "must not contain NUL characters")


class CarouselApi:
    """Handlers for every Carousel call; `routes()` plugs them into the engine's HTTP server."""

    def __init__(
        self,
        pool: Pool,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
        cache_seconds: float = 2.0,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._apps: dict[str, tuple[float, store.ApiApp]] = {}
        self._key_generation = 0  # bumped by forget_keys: a lookup that raced a key change is not cached
        self.calls: dict[str, Handler] = {
            "send_message": self.send_message,
            "send_messages": self.send_messages,
            "cancel_messages": self.cancel_messages,
            "cancel_subscription_messages": self.cancel_subscription_messages,
            "opt_in_request": self.opt_in_request,
            "opt_in_confirm": self.opt_in_confirm,
            "delivery_status": self.delivery_status,
            "remove_tag": self.remove_tag,
            "close_sessions": self.close_sessions,
            "set_time_zone": self.set_time_zone,
            "blacklist": self.blacklist,
            "unblacklist": self.unblacklist,
            "blacklist_status": self.blacklist_status,
            "validate_keyword": self.validate_keyword,
            "associate_keyword": self.associate_keyword,
            "dissociate_keyword": self.dissociate_keyword,
        }
        self.calls.update(NumbersApi(pool, lambda: self.settings).calls)  # dids, find_did, add_did, delete_did
        self.jobs = JobsApi(pool, settings, clock)
        self.calls.update(self.jobs.calls)
        self.calls.update(TrackingApi(pool, lambda: self.clock()).calls)  # messages, message, resend
        self._document = orjson.dumps(openapi.document())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/openapi.json", self.handle_openapi),
            # No implicit HEAD: it would run the call (send messages, change the blacklist) and hide the reply.
            web.get("/api/{call}", self.handle, allow_head=False),
            web.post("/api/{call}", self.handle),
        ]

    # ---- HTTP plumbing -------------------------------------------------------------------------

    async def handle_openapi(self, _: web.Request) -> web.Response:
        return web.Response(body=self._document, content_type=JSON_TYPE)

    async def handle(self, request: web.Request) -> web.Response:
        call = request.match_info["call"]
        try:
            handler = self.calls.get(call)
            if handler is None:
                raise ApiError(404, f"unknown call {call!r}")
            params = await _read_params(request, self.settings.read_timeout, UPLOADS.get(call, ()))
            app = await self.authenticate(params.get("api_key"))
            _check_text(params)
            return _json(await handler(app, params))
        except ApiError as exc:
            return _json({"error": exc.message}, exc.status)
        except UnreadableBody as exc:
            reply = _json({"error": exc.message}, exc.status)
            reply.force_close()  # the rest of the body was not read: this connection cannot carry another request
            return reply
        except InvalidInput as exc:
            return _json({"error": str(exc)} if exc.details is None else {"error": str(exc), "invalid": exc.details},
                         400)
        except NotFound as exc:  # e.g. another application's job: no different from one that does not exist
            return _json({"error": str(exc)}, 404)
        except Conflict as exc:
            return _json({"error": str(exc), **({"reason": exc.reason} if exc.reason else {})}, 409)
        except ProviderError as exc:
            return _json({"error": f"carrier error: {exc}"}, carrier_status(exc))
        except web.HTTPException as exc:  # e.g. 413 from a body over client_max_size
            return _json({"error": exc.reason}, exc.status)
        except asyncio.CancelledError:
            raise
        except Exception:
            error_id = secrets.token_hex(6)
            # Parameters are not logged: they carry the API key and message bodies.
            log.exception("API call %s failed (error id %s)", call, error_id)
            return _json({"error": f"internal server error (error id {error_id})"}, 500)

    async def authenticate(self, api_key: str | None) -> store.ApiApp:
        """The application owning *api_key*; 401 otherwise. Found apps are cached for cache_seconds."""
        key = (api_key or "").strip()
        if not key:
            raise ApiError(401, "api_key is required")
        digest = hash_api_key(key)
        now = time.monotonic()
        cached = self._apps.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._key_generation
        app = await store.app_by_key_hash(self.pool, digest)
        if app is None:
            raise ApiError(401, "api_key is not valid")
        if self.cache_seconds > 0 and generation == self._key_generation:
            if len(self._apps) >= CACHE_MAX:
                self._apps.clear()
            self._apps[digest] = (now + self.cache_seconds, app)
        return app

    def forget_keys(self) -> None:
        """Drop every cached key: each app's next call looks its key up again."""
        self._key_generation += 1
        self._apps.clear()

    async def watch_keys(self, dsn: str) -> None:
        """Until cancelled: drop the cache whenever an API key changes (``engine app rotate-key``, the console), so
        an old key stops working at once in every API server, not after the cache's few seconds."""
        changed = asyncio.Event()
        listening = asyncio.create_task(notify.listener(dsn, notify.API_KEYS, changed, name="api-keys").run())
        try:
            while True:
                await changed.wait()
                changed.clear()
                self.forget_keys()
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    # ---- messaging -----------------------------------------------------------------------------

    @staticmethod
    def _parts(app: store.ApiApp, body: str) -> tuple[str, ...]:
        """One part per SMS for carriers taking single SMS only; else the whole body (carrier concatenates).
        Admission's own split, so the parts are the ones a message from any other door would get."""
        return prepare(body, app.rules).parts

    async def _queue(
        self, app: store.ApiApp, p: pp.Params, drafts: list[store.Draft], *, notification: bool = False,
        template: str | None = None,
    ) -> Reply:
        """Queue *drafts*; with *notification*, the call's type, category and lifetime apply to them; with a
        *template* (send_messages) they are a job of their own, whose id is added to the reply."""
        tag = pp.validate_tag(p)
        now = self.clock()
        on = pp.parse_on(p, now)
        note = pp.parse_notification(p, now, on) if notification else Notification()
        action_expected = pp.parse_bool(p, "action_expected")
        job = None if template is None else JobSpec("send_messages", None, template, tag, on, note)
        job_id, results = await store.queue_job_messages(
            self.pool, app, drafts, tag=tag, send_at=on, open_session=action_expected, notification=note, job=job
        )
        reply: Reply = {"message_ids": ",".join(str(i) for ids in results for i in ids)}
        if job_id is not None:
            reply["job_id"] = str(job_id)
        return reply

    async def send_message(self, app: store.ApiApp, p: pp.Params) -> Reply:
        body = p.get("body")
        if body is None:
            raise InvalidInput("body", "is required")
        tags = pp.parse_tags(p, "tags")
        if tags:
            return await self._send_to_subscribers(app, p, body, tags)
        raws = pp.phone_list(p)
        parts = self._parts(app, pp.validate_body(
            "body", body, max_chars=self.settings.max_body_chars, max_segments=self.settings.max_segments,
            smart=app.smart_encoding,
        ))
        return await self._queue(app, p, [store.Draft(to_e164(raw), parts) for raw in raws], notification=True)

    async def send_messages(self, app: store.ApiApp, p: pp.Params) -> Reply:
        template = p.get("template")
        if template is None:
            raise InvalidInput("template", "is required")
        pp.validate_body("template", template, max_chars=self.settings.max_body_chars)
        recipients = pp.parse_recipients(pp.required(p, "recipients"))
        drafts: list[store.Draft] = []
        for phone, values in recipients.items():
            text = pp.render_template(template, values, who=phone)
            limit = self.settings.max_body_chars
            if not text.strip() or len(text) > limit:
                raise InvalidInput(
                    "recipients", f"the message for {phone} must be 1-{limit} characters, not {len(text)}"
                )
            pp.validate_body(f"recipients (the message for {phone})", text, max_chars=limit,
                             max_segments=self.settings.max_segments, smart=app.smart_encoding)
            drafts.append(store.Draft(to_e164(phone), self._parts(app, text)))
        return await self._queue(app, p, drafts, template=template)

    async def _send_to_subscribers(self, app: store.ApiApp, p: pp.Params, body: str, tags: tuple[str, ...]) -> Reply:
        """send_message with tags=: to the app's subscribers with any of the tags (not with phone numbers too)."""
        if pp.optional(p, "phone_number") or pp.optional(p, "phone_numbers"):
            raise InvalidInput("tags", "send either to phone numbers or to subscribers by tags, not both")
        parts = self._parts(app, pp.validate_body(
            "body", body, max_chars=self.settings.max_body_chars, max_segments=self.settings.max_segments,
            smart=app.smart_encoding,
        ))
        tag = pp.validate_tag(p)
        now = self.clock()
        on = pp.parse_on(p, now)
        note = pp.parse_notification(p, now, on)
        phones = await subs.subscribers(self.pool, app.id, tags, MAX_SUBSCRIBER_SEND)
        if len(phones) >= MAX_SUBSCRIBER_SEND:
            raise InvalidInput("tags", f"more than {MAX_SUBSCRIBER_SEND - 1} subscribers: send a job instead")
        results = await store.queue_messages(
            self.pool, app, [store.Draft(phone, parts) for phone in phones], tag=tag, send_at=on,
            open_session=pp.parse_bool(p, "action_expected"), to_subscribers=True, notification=note,
        )
        # Subscribers who opted out since are left out, not reported: the caller named tags, not phones.
        return {"message_ids": ",".join(str(i) for ids in results for i in ids if i > 0)}

    async def cancel_messages(self, app: store.ApiApp, p: pp.Params) -> Reply:
        count = await store.cancel_messages(self.pool, app.id, pp.parse_message_ids(p))
        return {"canceled_count": count}

    async def cancel_subscription_messages(self, app: store.ApiApp, p: pp.Params) -> Reply:
        count = await store.cancel_messages(self.pool, app.id, pp.parse_message_ids(p), subscription=True)
        return {"canceled_count": count}

    # ---- web opt-in (a code texted to the phone, confirmed on a web form) ------------------------------

    @staticmethod
    def _one_phone(p: pp.Params) -> str:
        raw = pp.required(p, "phone_number")
        phone = to_e164(raw)
        if phone is None:
            raise InvalidInput("phone_number", f"{raw!r} is not a valid phone number")
        return phone

    async def opt_in_request(self, app: store.ApiApp, p: pp.Params) -> Reply:
        phone = self._one_phone(p)
        tags = pp.parse_tags(p, "tags")
        if await store.blacklisted_among(self.pool, app.id, [phone]):
            raise ApiError(409, "the phone opted out of this application: it must text START (or another opt-in "
                           "keyword) before it can be texted a code")
        code = f"{secrets.randbelow(10**6):06d}"
        body = f"{app.name}: your verification code is {code}. It expires in {OPTIN_CODE_SECONDS // 60} minutes."
        message_id = await subs.request_opt_in(self.pool, app, phone, code, body, tags, OPTIN_CODE_SECONDS)
        return {"message_id": str(message_id)}

    async def opt_in_confirm(self, app: store.ApiApp, p: pp.Params) -> Reply:
        phone = self._one_phone(p)
        code = pp.required(p, "code")
        if not _CODE.fullmatch(code):
            raise InvalidInput("code", "is the 6-digit code texted to the phone")
        result = await subs.confirm_opt_in(self.pool, app.id, phone, code, max_tries=OPTIN_MAX_TRIES)
        if not result.ok:
            raise InvalidInput("code", result.problem or "not accepted")
        return {}

    async def set_time_zone(self, app: store.ApiApp, p: pp.Params) -> Reply:
        """The recipient's time zone for quiet hours (blank: forget it; the number's own zone applies)."""
        phone = self._one_phone(p)
        zone = pp.optional(p, "time_zone")
        if zone is not None and not valid_zone(zone):
            raise InvalidInput("time_zone", f"{zone[:64]!r} is not an IANA time zone (e.g. America/Chicago)")
        await lifetime.set_contact_zone(self.pool, app.id, phone, zone)
        return {"phone_number": did_text(phone), "time_zone": zone}

    async def delivery_status(self, app: store.ApiApp, p: pp.Params) -> Reply:
        statuses = await store.delivery_statuses(self.pool, app.id, pp.parse_message_ids(p))
        return {str(message_id): status for message_id, status in sorted(statuses.items())}

    async def remove_tag(self, app: store.ApiApp, p: pp.Params) -> Reply:
        raw = pp.required(p, "phone_number")
        phone = to_e164(raw)
        if phone is None:
            raise InvalidInput("phone_number", f"{raw!r} is not a valid phone number")
        await store.remove_tag(self.pool, app.id, phone, pp.required(p, "tag"))
        return {}

    # ---- sessions and blacklist ----------------------------------------------------------------

    @staticmethod
    def _phones(p: pp.Params) -> dict[str, str | None]:
        """Each phone number as given -> its E.164 form (None when invalid)."""
        return {raw: to_e164(raw) for raw in pp.phone_list(p)}

    async def close_sessions(self, app: store.ApiApp, p: pp.Params) -> Reply:
        phones = [e for e in self._phones(p).values() if e is not None]
        await store.close_sessions(self.pool, app.id, sorted(set(phones)))
        return {}

    async def blacklist(self, app: store.ApiApp, p: pp.Params) -> Reply:
        given = self._phones(p)
        await store.blacklist(self.pool, app.id, [e for e in given.values() if e is not None])
        return {raw: e164 is not None for raw, e164 in given.items()}

    async def unblacklist(self, app: store.ApiApp, p: pp.Params) -> Reply:
        given = self._phones(p)
        await store.unblacklist(self.pool, app.id, [e for e in given.values() if e is not None])
        return {raw: e164 is not None for raw, e164 in given.items()}

    async def blacklist_status(self, app: store.ApiApp, p: pp.Params) -> Reply:
        given = self._phones(p)
        listed = await store.blacklisted_among(self.pool, app.id, [e for e in given.values() if e is not None])
        return {raw: e164 in listed for raw, e164 in given.items()}

    # ---- keywords ------------------------------------------------------------------------------

    @staticmethod
    def _keyword_spec(p: pp.Params, *, full: bool) -> kw.KeywordSpec:
        keyword = pp.normalize_keyword(pp.required(p, "keyword"))
        mode = pp.parse_int(p, "mode", 0, low=0, high=1)
        if not full:
            return kw.KeywordSpec(keyword, mode)
        return kw.KeywordSpec(keyword, mode, pp.parse_bool(p, "auto_subscribe"), pp.parse_tags(p))

    @staticmethod
    def _errors(errors: list[str]) -> Reply:
        return {"errors": errors} if errors else {}

    async def validate_keyword(self, app: store.ApiApp, p: pp.Params) -> Reply:
        smsc_of(app)
        spec = self._keyword_spec(p, full=False)
        errors = pp.keyword_errors(spec.keyword) or await kw.check_keyword(self.pool, app, spec)
        return self._errors(errors)

    async def associate_keyword(self, app: store.ApiApp, p: pp.Params) -> Reply:
        smsc_of(app)
        spec = self._keyword_spec(p, full=True)
        errors = pp.keyword_errors(spec.keyword) or await kw.associate_keyword(self.pool, app, spec)
        return self._errors(errors)

    async def dissociate_keyword(self, app: store.ApiApp, p: pp.Params) -> Reply:
        smsc_of(app)
        keyword = pp.normalize_keyword(pp.required(p, "keyword"))
        return self._errors(await kw.dissociate_keyword(self.pool, app, keyword))
