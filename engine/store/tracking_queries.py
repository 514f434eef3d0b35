"""SQL of the tracking list (GET /api/messages, `engine messages list`), a message's detail and timeline, and
resends, by name.

The list is one statement per combination of filters, built from the fragments below by :func:`list_messages`
(only the filters given appear, so each combination gets a plan of its own that its index serves: a single
statement with ``($n IS NULL OR …)`` for every filter would leave PostgreSQL's generic plan one index for all).
Values travel as parameters; only the state list is written into the text, from the closed set of states, so
that partial indexes on states can serve it.

Order: newest first by (created_at, id), paged by keyset on that pair, so a page costs the same at any depth and
messages arriving meanwhile never shift later pages (no duplicates, no gaps). The indexes (migration 0013):
``engine_outbound_app_created`` (app_id, created_at, id) for the plain list and time ranges, partial ones for
tags, types and failures, ``engine_outbound_dedup`` (recipient, app_id, created_at) for a phone and
``engine_outbound_job`` for a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["LIST_ALL_FILTERS", "LIST_PLAIN", "STATES", "list_messages"]

# Every engine state (engine_outbound_state_check). The list's state filter is written from these only.
STATES: Final = frozenset({
    "queued", "claimed", "sending", "sent", "delivered", "undelivered", "failed", "suppressed", "canceled",
    "unknown", "expired",
})

_COLUMNS: Final = """o.id, o.app_id, o.recipient, o.sender, o.body, o.tag, o.type, o.category, o.job_id, o.state,
           o.status, o.segments, o.error_code, o.reason, o.resent_from, o.part_of, o.kind, o.created_at, o.send_at,
           o.sent_at, o.final_at, o.expires_at"""

# $1 the applications (one for an API call; the CLI may list several: each is read by its own index range and
# the pages merged), $2 the page size (+1, to know whether another page follows). Parameters from $3 on.
_LIST: Final = """
SELECT m.* FROM unnest($1::bigint[]) AS a(id)
CROSS JOIN LATERAL (
    SELECT {columns}
    FROM engine_outbound o
    WHERE o.app_id = a.id{where}
    ORDER BY o.created_at DESC, o.id DESC
    LIMIT $2
) AS m
ORDER BY m.created_at DESC, m.id DESC
LIMIT $2
"""


def list_messages(
    *,
    phone: bool = False,
    states: Sequence[str] = (),
    type_: bool = False,
    tag: bool = False,
    job: bool = False,
    since: bool = False,
    until: bool = False,
    cursor: bool = False,
) -> tuple[str, list[str]]:
    """The list statement for the filters given, and the names of its parameters from $3 on, in order
    (phone, type, tag, job_id, since, until, cursor_at, cursor_id, for those present). *states* are written into
    the statement (each must be one of :data:`STATES`)."""
    unknown = set(states) - STATES
    if unknown:
        raise ValueError(f"unknown states {sorted(unknown)}")
    where: list[str] = []
    names: list[str] = []

    def param(name: str, condition: str) -> None:
        names.append(name)
        where.append(condition.format(f"${len(names) + 2}"))

    if phone:
        param("phone", "o.recipient = {}")
    if states:
        listed = ",".join(sorted(set(states)))
        where.append(f"o.state = ANY('{{{listed}}}'::text[])")
    if type_:
        param("type", "o.type = {}")
    if tag:
        param("tag", "o.tag = {}")
    if job:
        param("job_id", "o.job_id = {}::bigint")
    if since:
        param("since", "o.created_at >= {}::timestamptz")
    if until:
        param("until", "o.created_at < {}::timestamptz")
    if cursor:
        names += ["cursor_at", "cursor_id"]
        n = len(names) + 2
        where.append(f"(o.created_at, o.id) < (${n - 1}::timestamptz, ${n}::bigint)")
    text = "".join(f"\n      AND {w}" for w in where)
    return _LIST.format(columns=_COLUMNS, where=text), names


# Representatives for the registry test (every statement prepares); tests/test_tracking_plans.py prepares and
# explains every combination.
LIST_PLAIN: Final = list_messages()[0]
LIST_ALL_FILTERS: Final = list_messages(
    phone=True, states=("failed", "undelivered"), type_=True, tag=True, job=True, since=True, until=True, cursor=True
)[0]

APPS: Final = "SELECT id, name FROM engine_app ORDER BY id"
# The list is planned for its values every time (in its own read-only transaction): see tracking.list_messages.
CUSTOM_PLANS: Final = "SET LOCAL plan_cache_mode = force_custom_plan"

# ---- one message ---------------------------------------------------------------------------------------
MESSAGE: Final = f"""
SELECT {_COLUMNS}, a.name AS app_name, o.encoding, o.provider_message_id, o.provider_status, o.error_message,
       o.attempts, o.due_at
FROM engine_outbound o JOIN engine_app a ON a.id = o.app_id
WHERE o.id = $1
"""
# Its status timeline: every recorded step, in order (the creation is the message's own created_at).
TIMELINE: Final = """
SELECT at, state, status, provider_status, error_code, reason, sender, applied
FROM engine_message_event WHERE message_id = $1
ORDER BY at
"""
# Parts 2..n of a message split for a single-SMS carrier, and the resends of a message.
PARTS: Final = "SELECT id, body, state, status FROM engine_outbound WHERE part_of = $1 ORDER BY id"
RESENDS: Final = "SELECT id FROM engine_outbound WHERE resent_from = $1 ORDER BY id"

# ---- resend ----------------------------------------------------------------------------------------------
# The message to repeat, with its app's flood rule.
ORIGINAL: Final = """
SELECT o.id, o.app_id, o.recipient, o.body, o.tag, o.type, o.category, o.expires_at, o.kind, o.state, o.part_of,
       a.flood_limit, extract(epoch FROM a.flood_period)::float8 AS flood_seconds
FROM engine_outbound o JOIN engine_app a ON a.id = o.app_id
WHERE o.id = $1
"""
# The repeat: one row per part of the original ($3 bodies, $8 the parts they repeat), in order, due now.
INSERT_RESEND: Final = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, type, category, expires_at, resent_from)
SELECT $1, $2, u.body, $4, $5, $6, $7, u.orig
FROM unnest($3::text[], $8::bigint[]) WITH ORDINALITY AS u(body, orig, i)
ORDER BY u.i
RETURNING id
"""
