"""The vocabulary of the API's OpenAPI description: a call (:class:`ApiCall`), its parameters (:class:`ApiParam`),
object schemas, and the notes and parameters calls of several areas share.

:mod:`engine.api.openapi` builds the document from the table of calls, which are described by area (there, in
:mod:`engine.api.openapi_tracking` and in :mod:`engine.api.openapi_jobs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from engine.api.params import MAX_RECIPIENTS

__all__ = ["BOOLEAN_NOTE", "DID_NOTE", "PHONE_NOTE", "SEND_COMMON", "ApiCall", "ApiParam", "obj"]

BOOLEAN_NOTE: Final = "Boolean: 1, t, true, y, yes / 0, f, false, n, no (any case); blank = default."
PHONE_NOTE: Final = (
    "10 digits with or without country code, punctuation allowed (e.g. +1(347)264-3707); "
    f"comma-separated for several, at most {MAX_RECIPIENTS} per call."
)
DID_NOTE: Final = "DIDs are returned as E.164 digits without the '+' (e.g. 13472643707)."


@dataclass(frozen=True, slots=True)
class ApiParam:
    name: str
    description: str
    kind: str = "string"  # string | boolean | integer | file (a multipart upload)
    required: bool = False
    enum: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiCall:
    name: str
    summary: str
    params: tuple[ApiParam, ...]
    response: dict[str, Any]
    example: dict[str, Any]
    description: str = ""
    tag: str = "Messaging"
    carrier: bool = False  # talks to the app's carrier account (422 / 502 / 409 possible)
    needs_smsc: bool = False
    errors: tuple[tuple[int, str], ...] = ()  # further error answers this call may give


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object schema with these *properties*, of which *required* must be present."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


SEND_COMMON = (
    ApiParam("action_expected", "A reply is expected: open a session (24 h) so the phone's replies come to this "
             "application without a keyword. " + BOOLEAN_NOTE, "boolean"),
    ApiParam("on", "When to send. Liberal parsing (16:30, Aug 31, 7/31, 2/9/2007, 2007-09-02T00:30:44Z, "
             "02-09-2007 12:30:44 PM EST, Wednesday, January 10, 2001, 10/12/2008 12:55AM -0500, now, "
             "tomorrow); UTC when no zone. With slashes the month comes first, with dashes (dd-mm-yyyy) the day."),
    ApiParam("tag", "Conversation thread: messages with the same tag to a phone go out through the same DID."),
)
