"""The OpenAPI 3 description of the Carousel-compatible API, built from one table of calls.

Served at ``/api/openapi.json``; tests check that the table and the server's calls agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from engine.api.params import MAX_BODY_CHARS, MAX_IDS, MAX_RECIPIENTS

__all__ = ["CALLS", "ApiCall", "ApiParam", "document"]

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


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_EMPTY = _obj({})
_ERRORS = _obj({"errors": {"type": "array", "items": {"type": "string"},
                           "description": "Present only when something is wrong with the keyword."}})
_PHONE_MAP = {"type": "object", "additionalProperties": {"type": "boolean"},
              "description": "Each phone number exactly as given -> boolean."}
_PHONES = (
    ApiParam("phone_number", "Phone number. " + PHONE_NOTE),
    ApiParam("phone_numbers", "Comma-separated phone numbers (alternative to phone_number). " + PHONE_NOTE),
)
_SEND_COMMON = (
    ApiParam("action_expected", "A reply is expected: open a session (24 h) so the phone's replies come to this "
             "application without a keyword. " + BOOLEAN_NOTE, "boolean"),
    ApiParam("on", "When to send. Liberal parsing (16:30, Aug 31, 7/31, 2/9/2007, 2007-09-02T00:30:44Z, "
             "02-09-2007 12:30:44 PM EST, Wednesday, January 10, 2001, 10/12/2008 12:55AM -0500, now, "
             "tomorrow); UTC when no zone. With slashes the month comes first, with dashes (dd-mm-yyyy) the day."),
    ApiParam("tag", "Conversation thread: messages with the same tag to a phone go out through the same DID."),
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
_MESSAGE_IDS = _obj(
    {"message_ids": {"type": "string", "description": "Comma-separated ids in recipient order, one per part when "
                     "the carrier takes single SMS only; -1 invalid number, -2 blacklisted, -3 flood limit."}},
    ("message_ids",),
)
_KEYWORD = ApiParam("keyword", "Keyword: 1-32 letters, digits, spaces, '_' or '-'; case-insensitive; unique within "
                    "the SMSC; opt-out/opt-in/help words are reserved.", required=True)
_MODE = ApiParam("mode", "0 = matches exactly (default), 1 = starts with. A starts-with keyword may not be a prefix "
                 "of (or start with) another application's keyword in the same SMSC.", "integer", enum=(0, 1))
_COUNTRY = ApiParam("country", "ISO 3166-1 alpha-2 country code (default US).")
_WHEN_NOTE = "Parsed like `on` (UTC when no zone)."
_ID_STRING = {"type": "string", "description": "A message id."}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_MESSAGE = _obj({
    "message_id": _ID_STRING, "phone_number": {"type": "string", "description": "E.164."},
    "sender": {**_NULLABLE_STRING, "description": "The DID it went out from (E.164)."},
    "body": {"type": "string"}, "status": {"type": "integer", "enum": [0, 1, 2, 4]},
    "state": {"type": "string", "description": "The engine's state (README, Statuses)."},
    "type": _NULLABLE_STRING, "category": {"type": "string", "enum": ["transactional", "marketing"]},
    "tag": _NULLABLE_STRING, "job_id": _NULLABLE_STRING, "segments": {"type": "integer", "nullable": True},
    "error_code": {"type": "integer", "nullable": True},
    "reason": {**_NULLABLE_STRING, "description": "Why the engine refused it (blacklisted, duplicate, …)."},
    "resent_from": {**_NULLABLE_STRING, "description": "The message this one repeats (resend)."},
    "part_of": {**_NULLABLE_STRING, "description": "Parts 2..n of a split message: its first part."},
    "kind": {"type": "string", "enum": ["message", "reply", "compliance"]},
    "created_at": {"type": "string", "format": "date-time"},
    **{name: {"type": "string", "format": "date-time", "nullable": True}
       for name in ("send_at", "sent_at", "final_at", "expires_at")},
})
_EVENT = _obj({
    "at": {"type": "string", "format": "date-time"},
    "event": {"type": "string", "enum": ["created", "engine", "carrier", "callback"], "description": (
        "created: queued; engine: the engine changed its state; carrier: the carrier's answer or a status callback "
        "changed it; callback: a status callback that changed nothing (it ranked lower than what was known)")},
    "state": {"type": "string"}, "status": {"type": "integer", "enum": [0, 1, 2, 4]},
    "provider_status": _NULLABLE_STRING, "error_code": {"type": "integer", "nullable": True},
    "reason": _NULLABLE_STRING, "sender": _NULLABLE_STRING, "applied": {"type": "boolean"},
})
_DETAIL = {**_MESSAGE, "properties": {
    **_MESSAGE["properties"], "app": {"type": "string"}, "encoding": _NULLABLE_STRING,
    "carrier_sid": _NULLABLE_STRING, "provider_status": _NULLABLE_STRING, "error_message": _NULLABLE_STRING,
    "attempts": {"type": "integer"}, "due_at": {"type": "string", "format": "date-time"},
    "parts": {"type": "array", "items": _ID_STRING}, "resends": {"type": "array", "items": _ID_STRING},
    "timeline": {"type": "array", "items": _EVENT},
}}
_MESSAGE_ID = ApiParam("message_id", "A message id of this application.", required=True)
_NOT_FOUND = ((404, "No such message of this application."),)

# ---- notification jobs (engine/api/jobs.py) -----------------------------------------------------------------
_JOB_ID = ApiParam("job_id", "The job's id (send_job's reply). Another application's job is a 404.", required=True)
_JOB = {
    "job_id": {"type": "string"}, "app": {"type": "string"}, "name": {"type": "string", "nullable": True},
    "source": {"type": "string", "enum": ["csv", "api", "send_messages"]},
    "state": {"type": "string", "enum": ["running", "paused", "canceled", "done"]},
    "total": {"type": "integer", "description": "Messages of the job (a part of a split message counts one)."},
    "type": {"type": "string", "nullable": True}, "category": {"type": "string"},
    "tag": {"type": "string", "nullable": True}, "send_at": {"type": "string", "nullable": True},
    "created_at": {"type": "string"}, "finished_at": {"type": "string", "nullable": True},
}
_COUNTS = _obj({k: {"type": "integer"} for k in (
    "queued", "sending", "sent", "delivered", "failed", "unknown", "canceled", "expired", "suppressed")})
_JOB_CHANGE = "A finished job (done) cannot be paused, resumed or canceled; a canceled one cannot be resumed."
_JOB_ERRORS = ((404, "No such job for this application."), (409, _JOB_CHANGE))
_SKIPPED = {"type": "array", "items": _obj({"line": {"type": "integer"}, "phone": {"type": "string"},
                                            "problem": {"type": "string"}})}
JOB_CALLS: Final[tuple[ApiCall, ...]] = (
    ApiCall(
        "send_job", "Send a {{placeholder}} template to many recipients as one job (JSON or an uploaded CSV)",
        (ApiParam("template", f"Template with {{{{name}}}} placeholders, at most {MAX_BODY_CHARS} characters after "
                  "substitution.", required=True),
         ApiParam("recipients", 'JSON object: phone number -> substitutions, e.g. {"13472643707": {"name": "Alex"}} '
                  "(or csv instead)."),
         ApiParam("csv", "A CSV file (multipart upload; or its text as a field) with a header line: the phone "
                  "column and one column per placeholder. UTF-8; delimiter , ; TAB or | (from the header line).",
                  "file"),
         ApiParam("phone_column", "The CSV's phone column (default phone)."),
         ApiParam("skip_invalid", "Queue the valid recipients and report the others in skipped (default: any "
                  "invalid recipient fails the call, nothing queued). " + BOOLEAN_NOTE, "boolean"),
         ApiParam("name", "A label for the job (default: the uploaded file's name)."),
         ApiParam("type", "A free label for the messages (registration, reminder, …), at most 64 characters."),
         ApiParam("category", "transactional (default) or marketing."),
         ApiParam("valid_for", "The messages' lifetime from when they are due: 3600, 90m, 2h, 1d, PT2H."),
         ApiParam("expires_at", "When the messages expire (parsed as on); the earlier of this and valid_for wins."),
         _SEND_COMMON[1], _SEND_COMMON[2]),
        _obj({"job_id": {"type": "string"}, "recipients": {"type": "integer"},
              "messages": {"type": "integer", "description": "Messages queued (parts count one each)."},
              "skipped": {**_SKIPPED, "description": "Recipients not sent (skip_invalid): CSV line or position."}},
             ("job_id", "recipients", "messages", "skipped")),
        {"job_id": "12", "recipients": 2, "messages": 2, "skipped": []},
        description="Every recipient is checked first (phone number, a value for each placeholder, the message's "
        "length and segments); invalid ones fail the call with 400, each named by CSV line (or JSON position) in "
        "the reply's invalid list, and nothing is queued, unless skip_invalid. The job and all its messages are "
        "queued in one transaction.",
        tag="Jobs",
    ),
    ApiCall(
        "job_status", "A job's progress: counts, rate, ETA", (_JOB_ID,),
        _obj({**_JOB, "counts": {**_COUNTS, "description": "Messages by progress group; they add up to total."},
              "by_state": {"type": "object", "additionalProperties": {"type": "integer"}},
              "by_status": {"type": "object", "additionalProperties": {"type": "integer"},
                            "description": "Carousel status (0, 1, 2, 4) -> messages."},
              "final": {"type": "integer"}, "rate": {"type": "number", "description": "Messages per second."},
              "capacity_per_s": {"type": "number", "nullable": True},
              "eta_seconds": {"type": "number", "nullable": True}}),
        {"job_id": "12", "state": "running", "total": 2, "counts": {"queued": 1, "delivered": 1}, "rate": 1.0,
         "eta_seconds": 1.0},
        tag="Jobs", errors=_JOB_ERRORS[:1],
    ),
    ApiCall(
        "pause_job", "Pause a job: its queued messages wait", (_JOB_ID,),
        _obj({**_JOB, "paused_count": {"type": "integer"}}), {"job_id": "12", "state": "paused", "paused_count": 7},
        description="Messages a worker already took from the queue may still go out.", tag="Jobs",
        errors=_JOB_ERRORS,
    ),
    ApiCall(
        "resume_job", "Resume a paused job", (_JOB_ID,),
        _obj({**_JOB, "resumed_count": {"type": "integer"}}), {"job_id": "12", "state": "running",
                                                               "resumed_count": 7},
        tag="Jobs", errors=_JOB_ERRORS,
    ),
    ApiCall(
        "cancel_job", "Cancel a job: its queued messages become canceled (status 2)", (_JOB_ID,),
        _obj({**_JOB, "canceled_count": {"type": "integer"}}), {"job_id": "12", "state": "canceled",
                                                                "canceled_count": 7},
        description="Messages a worker already took from the queue may still go out.", tag="Jobs",
        errors=_JOB_ERRORS,
    ),
)

CALLS: Final[tuple[ApiCall, ...]] = (
    ApiCall(
        "send_message", "Send one body to one or more phone numbers",
        (*_PHONES, ApiParam("body", f"Message text, at most {MAX_BODY_CHARS} characters.", required=True),
         ApiParam("tags", "Comma-separated subscription tags: send to the application's subscribers with any of "
                  "them instead of to phone numbers (phones that opted out are left out)."),
         *_SEND_COMMON, *_NOTIFICATION),
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
         *_SEND_COMMON),
        _obj({**_MESSAGE_IDS["properties"],
              "job_id": {"type": "string", "description": "The messages form a job (job_status)."}},
             ("message_ids", "job_id")),
        {"message_ids": "5554173,5554174", "job_id": "12"},
    ),
    ApiCall(
        "cancel_messages", "Cancel messages not yet sent (scheduled or still queued)",
        (ApiParam("message_ids", f"Comma-separated message ids (at most {MAX_IDS}).", required=True),),
        _obj({"canceled_count": {"type": "integer"}}, ("canceled_count",)), {"canceled_count": 2},
        description="Only messages of this application still waiting in the queue are canceled (status 2).",
    ),
    ApiCall(
        "cancel_subscription_messages", "Cancel messages sent to subscribers by tag, not yet sent",
        (ApiParam("message_ids", f"Comma-separated message ids (at most {MAX_IDS}).", required=True),),
        _obj({"canceled_count": {"type": "integer"}}, ("canceled_count",)), {"canceled_count": 2},
        description="cancel_messages cancels only the other messages.",
    ),
    ApiCall(
        "opt_in_request", "Web opt-in: text the phone a 6-digit verification code (valid 10 minutes)",
        (ApiParam("phone_number", "The phone to verify.", required=True),
         ApiParam("tags", "Comma-separated tags to subscribe the phone to once it confirms.")),
        _obj({"message_id": {"type": "string"}}, ("message_id",)), {"message_id": "5554056"},
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
    ApiCall(
        "messages", "List the application's messages, newest first, filtered and paged",
        (ApiParam("phone_number", "Only messages to this phone."),
         ApiParam("status", "Comma-separated Carousel codes (0 pending, 1 delivered, 2 failed, 4 queued at carrier) "
                  "and/or engine states (queued, sending, sent, delivered, undelivered, failed, suppressed, canceled, "
                  "expired, …): messages in any of them."),
         ApiParam("type", "Only messages of this type (a free label: registration, reminder, …)."),
         ApiParam("tag", "Only messages with this conversation tag."),
         ApiParam("job_id", "Only the messages of this job."),
         ApiParam("since", "Only messages created at or after this time. " + _WHEN_NOTE),
         ApiParam("until", "Only messages created before this time. " + _WHEN_NOTE),
         ApiParam("cursor", "next_cursor of the previous page (opaque); omitted: the first page."),
         ApiParam("limit", "Messages per page, 1-500 (default 50).", "integer")),
        _obj({"messages": {"type": "array", "items": _MESSAGE},
              "next_cursor": {**_NULLABLE_STRING, "description": "Pass as cursor for the next page; null: the last "
                              "page. Messages created meanwhile never shift later pages."}},
             ("messages", "next_cursor")),
        {"messages": [{"message_id": "5554055", "phone_number": "+13472643707", "sender": "+16462000001",
                       "body": "Storytime at 10", "status": 1, "state": "delivered", "type": "reminder",
                       "category": "transactional", "tag": None, "job_id": None, "segments": 1, "error_code": None,
                       "reason": None, "resent_from": None, "part_of": None, "kind": "message",
                       "created_at": "2026-03-02T14:00:00Z", "send_at": None, "sent_at": "2026-03-02T14:00:01Z",
                       "final_at": "2026-03-02T14:00:04Z", "expires_at": None}],
         "next_cursor": "MTc3MjQ2MDAwMDAwMDAwMC41NTU0MDU1"},
        tag="Tracking",
    ),
    ApiCall(
        "message", "One message with its status timeline",
        (_MESSAGE_ID,), _DETAIL,
        {"message_id": "5554055", "phone_number": "+13472643707", "state": "delivered", "status": 1,
         "carrier_sid": "SM0123456789abcdef0123456789abcdef", "encoding": "GSM-7", "segments": 1,
         "timeline": [{"at": "2026-03-02T14:00:00Z", "event": "created", "state": "queued", "status": 0,
                       "provider_status": None, "error_code": None, "reason": None, "sender": None, "applied": True},
                      {"at": "2026-03-02T14:00:04Z", "event": "carrier", "state": "delivered", "status": 1,
                       "provider_status": "delivered", "error_code": None, "reason": None, "sender": None,
                       "applied": True}]},
        description="Every field of the list, plus the full record (DID, carrier sid, encoding, error message, "
        "parts, resends) and the timeline: each state change with its time, including every carrier status "
        "callback (also those that changed nothing).",
        tag="Tracking", errors=_NOT_FOUND,
    ),
    ApiCall(
        "resend", "Send a message again (optionally to a corrected number), linked to the original",
        (_MESSAGE_ID, ApiParam("phone_number", "The corrected number to send to; omitted: the original's.")),
        _obj({"message_id": _ID_STRING}, ("message_id",)), {"message_id": "5554190"},
        description="A new message with the original's body, tag, type, category and expiry, resent_from the "
        "original, sent now, even inside the duplicate window (a person asked for it); every other rule applies. A "
        "part of a split message resends the whole message.",
        tag="Tracking",
        errors=(*_NOT_FOUND, (409, "Not resent, nothing queued (reason given): the phone opted out (blacklisted) or "
                              "reached the flood limit, the message has not been sent yet (not_sent), its lifetime "
                              "is over (expired), or it is an engine STOP/HELP answer (compliance).")),
    ),
    ApiCall(
        "remove_tag", "Release the DID a conversation tag is pinned to",
        (ApiParam("phone_number", "Recipient's phone number.", required=True),
         ApiParam("tag", "Conversation thread identifier.", required=True)),
        _EMPTY, {},
    ),
    ApiCall(
        "dids", "List the DIDs of the application's SMSC", (),
        _obj({"dids": {"type": "string", "description": "Comma-separated. " + DID_NOTE}}, ("dids",)),
        {"dids": "13472643707,13472643708"}, tag="DIDs", needs_smsc=True,
    ),
    ApiCall(
        "find_did", "Find DIDs available for purchase",
        (ApiParam("number", "Fragment of the desired number (e.g. an area code); digits, letters, '*'."), _COUNTRY,
         ApiParam("type", "long_code (local numbers) or toll_free; omitted: local numbers, then toll-free ones.")),
        _obj({"dids": {"type": "string", "description": "Comma-separated. " + DID_NOTE}}, ("dids",)),
        {"dids": "13475550123,13475550456"}, tag="DIDs", carrier=True,
    ),
    ApiCall(
        "add_did", "Buy a DID and add it to the application's SMSC",
        (ApiParam("number", "The DID to buy; omitted: the first available number of the country."), _COUNTRY,
         ApiParam("type", "long_code (default) or toll_free: what to buy when no number is given; sets the DID's "
                          "default pace (60 or 180 segments/min).")),
        _obj({"did": {"type": "string", "description": DID_NOTE}}, ("did",)), {"did": "13475550123"},
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
        _obj({"phone_number": {"type": "string"}, "time_zone": {"type": "string", "nullable": True}},
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
            return {"schema": _obj(properties, tuple(p.name for p in params if p.required))}

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
            "schemas": {"Error": _obj({"error": {"type": "string"}}, ("error",))},
        },
        "security": [{"api_key": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
