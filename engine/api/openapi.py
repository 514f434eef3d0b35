"""The OpenAPI 3 description of the Carousel-compatible API, built from one table of calls.

Served at ``/api/openapi.json``; tests check that the table and the server's calls agree. The table's tracking and
job calls are described in :mod:`engine.api.openapi_tracking` and :mod:`engine.api.openapi_jobs`, the vocabulary
(calls, parameters, shared notes) in :mod:`engine.api.openapi_schema`.
"""

from __future__ import annotations

from typing import Any, Final

from engine.api.openapi_jobs import JOB_CALLS
from engine.api.openapi_schema import BOOLEAN_NOTE, DID_NOTE, PHONE_NOTE, SEND_COMMON, ApiCall, ApiParam, obj
from engine.api.openapi_tracking import TRACKING_CALLS
from engine.api.params import MAX_BODY_CHARS, MAX_IDS, MAX_RECIPIENTS

__all__ = ["CALLS", "document"]

_EMPTY = obj({})
_ERRORS = obj({"errors": {"type": "array", "items": {"type": "string"},
                          "description": "Present only when something is wrong with the keyword."}})
_PHONE_MAP = {"type": "object", "additionalProperties": {"type": "boolean"},
              "description": "Each phone number exactly as given -> boolean."}
_PHONES = (
    ApiParam("phone_number", "Phone number. " + PHONE_NOTE),
    ApiParam("phone_numbers", "Comma-separated phone numbers (alternative to phone_number). " + PHONE_NOTE),
)
_NOTIFICATION = (
    ApiParam("type", "A free label for the notification (registration, reminder, waitlist, cancellation, …), "
             "1-64 characters; stored and filterable."),
    ApiParam("category", "transactional (default) or marketing. A marketing message goes only to phones subscribed "
             "to the application (others end failed, reason no_consent) and waits for the recipient's local quiet "
             "hours to end (08:00-21:00 by default, stricter in some US states)."),
    ApiParam("valid_for", "Lifetime from when the message is due: seconds (3600), units (90m, 2h, 1d, 1h30m) or ISO "
             "8601 (PT2H); at most 365 days. Still unsent when it ends, the message ends expired (status 2, reason "
             "expired) and is never sent late; the rest of it goes to the carrier (Twilio ValidityPeriod)."),
    ApiParam("expires_at", "When the message may no longer be sent (parsed like on; UTC when no zone); the earlier "
             "of valid_for and expires_at wins. Without either, the application's default lifetime applies."),
)
_MESSAGE_IDS = obj(
    {"message_ids": {"type": "string", "description": "Comma-separated ids in recipient order, one per part when "
                     "the carrier takes single SMS only; -1 invalid number, -2 blacklisted, -3 flood limit."}},
    ("message_ids",),
)
_KEYWORD = ApiParam("keyword", "Keyword: 1-32 letters, digits, spaces, '_' or '-'; case-insensitive; unique within "
                    "the SMSC; opt-out/opt-in/help words are reserved.", required=True)
_MODE = ApiParam("mode", "0 = matches exactly (default), 1 = starts with. A starts-with keyword may not be a prefix "
                 "of (or start with) another application's keyword in the same SMSC.", "integer", enum=(0, 1))
_COUNTRY = ApiParam("country", "ISO 3166-1 alpha-2 country code (default US).")

CALLS: Final[tuple[ApiCall, ...]] = (
    ApiCall(
        "send_message", "Send one body to one or more phone numbers",
        (*_PHONES, ApiParam("body", f"Message text, at most {MAX_BODY_CHARS} characters.", required=True),
         ApiParam("tags", "Comma-separated subscription tags: send to the application's subscribers with any of "
                  "them instead of to phone numbers (phones that opted out are left out)."),
         *SEND_COMMON, *_NOTIFICATION),
        _MESSAGE_IDS, {"message_ids": "5554055,-1"},
        description="Invalid numbers, blacklisted numbers and flooded numbers get a negative id; the others are "
        "queued in one transaction.",
    ),
    ApiCall(
        "send_messages", "Send a {{placeholder}} template personalised per recipient",
        (ApiParam("template", "Template with {{name}} placeholders, at most "
                  f"{MAX_BODY_CHARS} characters after substitution.", required=True),
         ApiParam("recipients", 'JSON object: phone number -> substitutions, e.g. {"13472643707": {"name": "Alex"}}. '
                  f"At most {MAX_RECIPIENTS} numbers. A placeholder missing from a recipient's substitutions fails "
                  "the whole call (400).", required=True),
         *SEND_COMMON),
        obj({**_MESSAGE_IDS["properties"],
             "job_id": {"type": "string", "description": "The messages form a job (job_status)."}},
            ("message_ids", "job_id")),
        {"message_ids": "5554173,5554174", "job_id": "12"},
    ),
    ApiCall(
        "cancel_messages", "Cancel messages not yet sent (scheduled or still queued)",
        (ApiParam("message_ids", f"Comma-separated message ids (at most {MAX_IDS}).", required=True),),
        obj({"canceled_count": {"type": "integer"}}, ("canceled_count",)), {"canceled_count": 2},
        description="Only messages of this application still waiting in the queue are canceled (status 2).",
    ),
    ApiCall(
        "cancel_subscription_messages", "Cancel messages sent to subscribers by tag, not yet sent",
        (ApiParam("message_ids", f"Comma-separated message ids (at most {MAX_IDS}).", required=True),),
        obj({"canceled_count": {"type": "integer"}}, ("canceled_count",)), {"canceled_count": 2},
        description="cancel_messages cancels only the other messages.",
    ),
    ApiCall(
        "opt_in_request", "Web opt-in: text the phone a 6-digit verification code (valid 10 minutes)",
        (ApiParam("phone_number", "The phone to verify.", required=True),
         ApiParam("tags", "Comma-separated tags to subscribe the phone to once it confirms.")),
        obj({"message_id": {"type": "string"}}, ("message_id",)), {"message_id": "5554056"},
        description="409 when the phone opted out of the application: it must text START first.",
        tag="Subscriptions",
    ),
    ApiCall(
        "opt_in_confirm", "Web opt-in: subscribe the phone with the code it was texted",
        (ApiParam("phone_number", "The phone being verified.", required=True),
         ApiParam("code", "The 6-digit code.", required=True)),
        _EMPTY, {},
        description="400 for a wrong, expired or locked code (5 wrong tries lock it; request a new one).",
        tag="Subscriptions",
    ),
    ApiCall(
        "delivery_status", "Status of messages",
        (ApiParam("message_ids", f"Comma-separated message ids (at most {MAX_IDS}).", required=True),),
        {"type": "object", "additionalProperties": {"type": "integer", "enum": [0, 1, 2, 4]},
         "description": "Found id -> 0 pending, 1 delivered, 2 failed, 4 queued at carrier; unknown ids are left out."},
        {"5554055": 1},
    ),
    *TRACKING_CALLS,
    ApiCall(
        "remove_tag", "Release the DID a conversation tag is pinned to",
        (ApiParam("phone_number", "Recipient's phone number.", required=True),
         ApiParam("tag", "Conversation thread identifier.", required=True)),
        _EMPTY, {},
    ),
    ApiCall(
        "dids", "List the DIDs of the application's SMSC", (),
        obj({"dids": {"type": "string", "description": "Comma-separated. " + DID_NOTE}}, ("dids",)),
        {"dids": "13472643707,13472643708"}, tag="DIDs", needs_smsc=True,
    ),
    ApiCall(
        "find_did", "Find DIDs available for purchase",
        (ApiParam("number", "Fragment of the desired number (e.g. an area code); digits, letters, '*'."), _COUNTRY,
         ApiParam("type", "long_code (local numbers) or toll_free; omitted: local numbers, then toll-free ones.")),
        obj({"dids": {"type": "string", "description": "Comma-separated. " + DID_NOTE}}, ("dids",)),
        {"dids": "13475550123,13475550456"}, tag="DIDs", carrier=True,
    ),
    ApiCall(
        "add_did", "Buy a DID and add it to the application's SMSC",
        (ApiParam("number", "The DID to buy; omitted: the first available number of the country."), _COUNTRY,
         ApiParam("type", "long_code (default) or toll_free: what to buy when no number is given; sets the DID's "
                          "default pace (60 or 180 segments/min).")),
        obj({"did": {"type": "string", "description": DID_NOTE}}, ("did",)), {"did": "13475550123"},
        tag="DIDs", carrier=True, needs_smsc=True,
    ),
    ApiCall(
        "delete_did", "Release a DID at the carrier and remove it from the application",
        (ApiParam("number", "The DID to delete.", required=True),),
        _EMPTY, {}, tag="DIDs", carrier=True, needs_smsc=True,
    ),
    ApiCall(
        "set_time_zone", "Store the time zone of a recipient (quiet hours are judged in it)",
        (ApiParam("phone_number", "The recipient.", required=True),
         ApiParam("time_zone", "An IANA time zone (America/Chicago, Europe/Paris); blank forgets the stored one, "
                  "and the number's own zone (from its area code) applies again.")),
        obj({"phone_number": {"type": "string"}, "time_zone": {"type": "string", "nullable": True}},
            ("phone_number", "time_zone")),
        {"phone_number": "13472643707", "time_zone": "America/Chicago"}, tag="Contacts",
    ),
    ApiCall(
        "close_sessions", "Close sessions with phone numbers",
        _PHONES, _EMPTY, {}, tag="Sessions",
        description="Sends one session_closed callback listing the sessions that were open.",
    ),
    ApiCall(
        "blacklist", "Blacklist phone numbers", _PHONES,
        {**_PHONE_MAP, "description": "Phone as given -> true when it is now blacklisted (false: invalid number)."},
        {"3472643707": True}, tag="Blacklist",
        description="Sends a phone_blacklisted callback for each number that was not blacklisted before.",
    ),
    ApiCall(
        "unblacklist", "Remove phone numbers from the blacklist", _PHONES,
        {**_PHONE_MAP, "description": "Phone as given -> true when it is now not blacklisted (false: invalid)."},
        {"3472643707": True}, tag="Blacklist",
        description="Sends a phone_unblacklisted callback for each number that was blacklisted before.",
    ),
    ApiCall(
        "blacklist_status", "Whether phone numbers are blacklisted", _PHONES,
        {**_PHONE_MAP, "description": "Phone as given -> true when blacklisted."},
        {"3472643707": False}, tag="Blacklist",
    ),
    ApiCall(
        "validate_keyword", "Check that a keyword could be associated",
        (_KEYWORD, _MODE), _ERRORS, {"errors": ["keyword 'STOP' is reserved for opt-out, opt-in and help messages"]},
        tag="Keywords", needs_smsc=True,
    ),
    ApiCall(
        "associate_keyword", "Associate a keyword with the application",
        (_KEYWORD, _MODE,
         ApiParam("auto_subscribe", "The keyword subscribes the texter. " + BOOLEAN_NOTE, "boolean"),
         ApiParam("auto_subscribe_tags", "Comma-separated tags for the auto-subscription.")),
        _ERRORS, {}, tag="Keywords", needs_smsc=True,
        description="Associating a keyword the application already has updates its mode and subscription settings.",
    ),
    ApiCall(
        "dissociate_keyword", "Dissociate a keyword from the application",
        (_KEYWORD,), _ERRORS, {}, tag="Keywords", needs_smsc=True,
    ),
    *JOB_CALLS,
)


def _schema(param: ApiParam) -> dict[str, Any]:
    if param.kind == "file":
        return {"type": "string", "format": "binary"}
    if param.kind == "integer":
        schema: dict[str, Any] = {"type": "integer"}
        if param.enum:
            schema["enum"] = list(param.enum)
        return schema
    if param.kind == "boolean":
        return {"type": "string", "example": "true"}
    return {"type": "string"}


def _error_response(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(call: ApiCall) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "Success", "content": {"application/json": {"schema": call.response,
                                                                            "example": call.example}}},
        "400": _error_response("A parameter is missing or invalid; the message names it. Nothing changed."),
        "401": _error_response("api_key missing or wrong."),
        "408": _error_response("The request body did not arrive within the server's read timeout. Nothing changed."),
        "500": _error_response("Server fault (logged with a traceback). Nothing changed."),
    }
    if call.carrier or call.needs_smsc:
        responses["409"] = _error_response("The application has no SMSC or no carrier account.")
    for status, description in call.errors:
        responses[str(status)] = _error_response(description)
    if call.carrier:
        responses["422"] = _error_response(
            "The carrier turned the request down (e.g. no such number for sale); its message is included. "
            "Nothing changed."
        )
        responses["502"] = _error_response(
            "The carrier failed, was unreachable or rejected our credentials. Nothing changed."
        )
    return responses


def _operation(call: ApiCall, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{call.name}_{method}",
        "summary": call.summary,
        "tags": [call.tag],
        "responses": _responses(call),
    }
    if call.description:
        operation["description"] = call.description
    if method == "get":
        operation["parameters"] = [
            {"name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": _schema(p)}
            for p in call.params if p.kind != "file"
        ]
    elif call.params:
        def body(params: tuple[ApiParam, ...]) -> dict[str, Any]:
            properties = {p.name: {**_schema(p), "description": p.description} for p in params}
            return {"schema": obj(properties, tuple(p.name for p in params if p.required))}

        content = {"application/x-www-form-urlencoded": body(tuple(p for p in call.params if p.kind != "file"))}
        if any(p.kind == "file" for p in call.params):
            content["multipart/form-data"] = body(call.params)
        operation["requestBody"] = {"required": any(p.required for p in call.params), "content": content}
    return operation


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every call (GET with a query string, or POST with a form)."""
    paths: dict[str, Any] = {
        f"/api/{call.name}": {"get": _operation(call, "get"), "post": _operation(call, "post")} for call in CALLS
    }
    paths["/api/openapi.json"] = {
        "get": {"operationId": "openapi", "summary": "This document", "security": [], "tags": ["Meta"],
                "responses": {"200": {"description": "The OpenAPI document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}
    }
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "SMS engine - Carousel-compatible Service Layer API",
            "version": "1.0.0",
            "description": (
                "Every call is POST (URL-encoded form) or GET (query string) to /api/<call> with the "
                "application's api_key (query or form). Replies are JSON. Errors are JSON {\"error\": message} "
                "with 400 (bad parameter, named), 401 (api_key), 404 (unknown call), 408 (body not received in time), "
                "409 (no SMSC/carrier), "
                "500 (server fault), 422 (the carrier turned the request down) or 502 (carrier failure); "
                "a failed call changes nothing."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"api_key": {"type": "apiKey", "in": "query", "name": "api_key",
                                            "description": "May also be sent as a form field."}},
            "schemas": {"Error": obj({"error": {"type": "string"}}, ("error",))},
        },
        "security": [{"api_key": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
