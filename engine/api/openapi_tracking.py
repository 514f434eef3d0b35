"""The OpenAPI description of the tracking calls (engine/api/tracking.py): the application's messages, one
message with its timeline, resend.
"""

from __future__ import annotations

from typing import Final

from engine.api.openapi_schema import ApiCall, ApiParam, obj

__all__ = ["TRACKING_CALLS"]

_WHEN_NOTE = "Parsed like `on` (UTC when no zone)."
_ID_STRING = {"type": "string", "description": "A message id."}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_MESSAGE = obj({
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
_EVENT = obj({
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

TRACKING_CALLS: Final[tuple[ApiCall, ...]] = (
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
        obj({"messages": {"type": "array", "items": _MESSAGE},
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
        obj({"message_id": _ID_STRING}, ("message_id",)), {"message_id": "5554190"},
        description="A new message with the original's body, tag, type, category and expiry, resent_from the "
        "original, sent now, even inside the duplicate window (a person asked for it); every other rule applies. A "
        "part of a split message resends the whole message.",
        tag="Tracking",
        errors=(*_NOT_FOUND, (409, "Not resent, nothing queued (reason given): the phone opted out (blacklisted) or "
                              "reached the flood limit, the message has not been sent yet (not_sent), its lifetime "
                              "is over (expired), or it is an engine STOP/HELP answer (compliance).")),
    ),
)
