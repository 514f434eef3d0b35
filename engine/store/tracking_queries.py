"""SQL of the tracking list (GET /api/messages, `engine messages list`), a message's detail and timeline, and
resends, by name.

The list is one statement per combination of filters, built from the fragments below by :func:`list_messages`.
Order: newest first by (created_at, id), paged by keyset on that pair, so a page costs the same at any depth and
messages arriving meanwhile never shift later pages (no duplicates, no gaps).

Each statement reads ONE index in that order, chosen here, not by the planner: the most selective filter given
drives (a phone, then a tag, a job, a type, failed states, else the application's whole list), with the time
range and the cursor as its range, and the other filters are checked on its rows until the page is full. The
driving scan sits in a subquery fenced with ``OFFSET 0`` so the planner can neither swap its index nor move the
other filters into it. Left to itself, the planner assumes matching rows are spread evenly: it read an app's whole
list backwards for a job whose rows all lay far back, or intersected the bitmaps of all the app's failures and a
whole job (tens of milliseconds on a million messages, growing with the table). The drivers' indexes (migrations
0006, 0013): ``engine_outbound_dedup`` (recipient, app_id, created_at), ``engine_outbound_app_tag``,
``engine_outbound_job`` (job_id, state, created_at, id: one range per state, merged), ``engine_outbound_app_type``,
``engine_outbound_app_failed`` and ``engine_outbound_app_created`` (app_id, created_at, id). Values travel as
parameters; only state lists are written into the text, from the closed set of states (so that the failures'
partial index matches them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["FAILED_STATES", "LIST_ALL_FILTERS", "LIST_PLAIN", "STATES", "driver", "list_messages"]

# Every engine state (engine_outbound_state_check). The list's state filter is written from these only.
STATES: Final = frozenset({
    "queued", "claimed", "sending", "sent", "delivered", "undelivered", "failed", "suppressed", "canceled",
    "unknown", "expired",
})
# The states of engine_outbound_app_failed's predicate (Carousel status 2).
FAILED_STATES: Final = frozenset({"failed", "undelivered", "suppressed", "canceled", "expired"})

_COLUMNS: Final = """o.id, o.app_id, o.recipient, o.sender, o.body, o.tag, o.type, o.category, o.job_id, o.state,
           o.status, o.segments, o.error_code, o.reason, o.resent_from, o.part_of, o.kind, o.created_at, o.send_at,
           o.sent_at, o.final_at, o.expires_at"""

# $1 the applications (one for an API call; the CLI may list several: each is read by its own index range and
# the pages merged), $2 the page size (+1, to know whether another page follows). Parameters from $3 on.
# Per application, the first $2 rows the driving scan yields that pass the other filters: the scan is already in
# the list's order (the subquery's ORDER BY, kept through the filter), and no ORDER BY at that level lets the
# planner know only the first rows are wanted, so that it reads the index in order rather than all of it. The
# outer ORDER BY merges the applications' pages.
_LIST: Final = """
SELECT m.* FROM unnest($1::bigint[]) AS a(id)
CROSS JOIN LATERAL (
    SELECT {columns}
    FROM (
        SELECT o.* FROM engine_outbound o
        WHERE {driving}
        ORDER BY o.created_at DESC, o.id DESC
        OFFSET 0
    ) AS o{checked}
    LIMIT $2
) AS m
ORDER BY m.created_at DESC, m.id DESC
LIMIT $2
"""

# A job's page: its index is (job_id, state, created_at, id), so each state asked for (every state when the filter
# names none) is read as a range of its own, in the list's order, up to a page; the states' pages are merged.
_JOB_LIST: Final = """
SELECT m.* FROM unnest($1::bigint[]) AS a(id)
CROSS JOIN LATERAL (
    SELECT j.* FROM unnest('{{{states}}}'::text[]) AS st(state)
    CROSS JOIN LATERAL (
        SELECT {columns}
        FROM (
            SELECT o.* FROM engine_outbound o
            WHERE {driving}
            ORDER BY o.created_at DESC, o.id DESC
            OFFSET 0
        ) AS o{checked}
        LIMIT $2
    ) AS j
    ORDER BY j.created_at DESC, j.id DESC
    LIMIT $2
) AS m
ORDER BY m.created_at DESC, m.id DESC
LIMIT $2
"""

# The driving index of each filter, most selective first.
DRIVERS: Final = (
    ("phone", "engine_outbound_dedup"),
    ("tag", "engine_outbound_app_tag"),
    ("job", "engine_outbound_job"),
    ("type", "engine_outbound_app_type"),
    ("failed", "engine_outbound_app_failed"),
    ("app", "engine_outbound_app_created"),
)


def driver(*, phone: bool, tag: bool, job: bool, type_: bool, states: Sequence[str]) -> str:
    """Which filter drives the list: phone, tag, job, type, failed (every state asked for is a failed one) or app."""
    given = {"phone": phone, "tag": tag, "job": job, "type": type_,
             "failed": bool(states) and set(states) <= FAILED_STATES}
    return next((name for name, _ in DRIVERS if given.get(name)), "app")


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
    lead = driver(phone=phone, tag=tag, job=job, type_=type_, states=states)
    driving: list[str] = []
    checked: list[str] = []
    names: list[str] = []

    def param(name: str, condition: str, drives: bool) -> None:
        names.append(name)
        (driving if drives else checked).append(condition.format(f"${len(names) + 2}"))

    # The app: part of every driving index but the job's (a job is one app's: checked on its rows). "id > 0" (every
    # row) is the predicate of the app's list index, which only the list may use (see migration 0013).
    (checked if lead == "job" else driving).append("o.app_id = a.id")
    if lead == "app":
        driving.append("o.id > 0")
    if phone:
        param("phone", "o.recipient = {}", lead == "phone")
    if states and lead != "job":  # (a job's states are its index's ranges: see below)
        listed = ",".join(sorted(set(states)))
        (driving if lead == "failed" else checked).append(f"o.state = ANY('{{{listed}}}'::text[])")
    if type_:
        param("type", "o.type = {}", lead == "type")
    if tag:
        param("tag", "o.tag = {}", lead == "tag")
    if job:
        param("job_id", "o.job_id = {}::bigint", lead == "job")
    if since:
        param("since", "o.created_at >= {}::timestamptz", True)
    if until:
        param("until", "o.created_at < {}::timestamptz", True)
    if cursor:
        names += ["cursor_at", "cursor_id"]
        n = len(names) + 2
        driving.append(f"(o.created_at, o.id) < (${n - 1}::timestamptz, ${n}::bigint)")
    if lead == "job":  # the state of each range (see _JOB_LIST), right after the job
        driving.insert(1, "o.state = st.state")
        listed = ",".join(sorted(set(states) or STATES))
        return _JOB_LIST.format(states=listed, columns=_COLUMNS, driving="\n              AND ".join(driving),
                                checked=_where(checked, "        ")), names
    sql = _LIST.format(columns=_COLUMNS, driving="\n          AND ".join(driving), checked=_where(checked, "    "))
    return sql, names


def _where(conditions: list[str], indent: str) -> str:
    return "".join(f"\n{indent}{'WHERE' if i == 0 else '  AND'} {c}" for i, c in enumerate(conditions))


# Representatives for the registry test (every statement prepares); tests/test_tracking_plans.py prepares and
# explains every combination.
LIST_PLAIN: Final = list_messages()[0]
LIST_ALL_FILTERS: Final = list_messages(
    phone=True, states=("failed", "undelivered"), type_=True, tag=True, job=True, since=True, until=True, cursor=True
)[0]

APPS: Final = "SELECT id, name FROM engine_app ORDER BY id"
JOB_APP: Final = "SELECT app_id FROM engine_job WHERE id = $1"
# Run before the list, in its read-only transaction: the driving index is read in order and nothing else. With
# sorts and bitmap scans allowed, the planner, assuming the rows a filter keeps are spread evenly, read a whole
# job (or phone, tag…) through a bitmap and sorted it whenever it expected fewer matches than a page, though the
# index in order stops at the page's last row (a job of 200,000 messages: a sort of 200,000 rows per page).
LIST_PLANNING: Final = "SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)"

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
