"""Twilio's wire format as the fake carrier speaks it: URL-encoded forms in, JSON and Twilio-shaped errors out.

Every part of the fake answers through these helpers, so a reply looks the same whichever part wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

__all__ = ["E164", "JSON", "error", "json_reply", "not_found", "read_form"]

JSON: Final = "application/json"
E164: Final = re.compile(r"\+[1-9]\d{6,14}")


def json_reply(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """*doc* as a JSON reply."""
    return web.Response(status=status, body=orjson.dumps(doc), content_type=JSON, headers=headers)


def error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A Twilio-shaped error reply: its error ``code``, ``message``, ``more_info`` link and HTTP ``status``."""
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return json_reply({"code": code, "message": message, "more_info": more_info, "status": status}, status, headers)


def not_found(request: web.Request) -> web.Response:
    """Twilio's 404 for a resource that does not exist (or belongs to another account)."""
    return error(404, 20404, f"The requested resource {request.path} was not found")


async def read_form(request: web.Request) -> dict[str, str]:
    """The request's URL-encoded form; undecodable bytes are replaced, not refused, as Twilio does."""
    raw = await request.read()
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
