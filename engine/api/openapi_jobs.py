"""The OpenAPI description of the notification job calls (engine/api/jobs.py)."""

from __future__ import annotations

from typing import Final

from engine.api.openapi_schema import BOOLEAN_NOTE, SEND_COMMON, ApiCall, ApiParam, obj
from engine.api.params import MAX_BODY_CHARS

__all__ = ["JOB_CALLS"]

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
_COUNTS = obj({k: {"type": "integer"} for k in (
    "queued", "sending", "sent", "delivered", "failed", "unknown", "canceled", "expired", "suppressed")})
_JOB_CHANGE = "A finished job (done) cannot be paused, resumed or canceled; a canceled one cannot be resumed."
_JOB_ERRORS = ((404, "No such job for this application."), (409, _JOB_CHANGE))
_SKIPPED = {"type": "array", "items": obj({"line": {"type": "integer"}, "phone": {"type": "string"},
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
         SEND_COMMON[1], SEND_COMMON[2]),
        obj({"job_id": {"type": "string"}, "recipients": {"type": "integer"},
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
        obj({**_JOB, "counts": {**_COUNTS, "description": "Messages by progress group; they add up to total."},
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
        obj({**_JOB, "paused_count": {"type": "integer"}}), {"job_id": "12", "state": "paused", "paused_count": 7},
        description="Messages a worker already took from the queue may still go out.", tag="Jobs",
        errors=_JOB_ERRORS,
    ),
    ApiCall(
        "resume_job", "Resume a paused job", (_JOB_ID,),
        obj({**_JOB, "resumed_count": {"type": "integer"}}), {"job_id": "12", "state": "running",
                                                              "resumed_count": 7},
        tag="Jobs", errors=_JOB_ERRORS,
    ),
    ApiCall(
        "cancel_job", "Cancel a job: its queued messages become canceled (status 2)", (_JOB_ID,),
        obj({**_JOB, "canceled_count": {"type": "integer"}}), {"job_id": "12", "state": "canceled",
                                                               "canceled_count": 7},
        description="Messages a worker already took from the queue may still go out.", tag="Jobs",
        errors=_JOB_ERRORS,
    ),
)
