"""What the tracking list should show for a set of rows: the reference the list's tests compare pages with."""

from __future__ import annotations

from typing import Any

import asyncpg


def expected_ids(rows: list[dict[str, Any]], **want: Any) -> list[int]:
    """The ids of *rows* that pass every filter in *want*, newest first as the list orders them ((created_at, id)
    descending). `states` is a set of states, `since`/`until` a half-open time range; any other key is a column
    that must equal the value (`app_id=…`, `recipient=…`, `job_id=…`)."""
    def keep(r: dict[str, Any]) -> bool:
        for key, value in want.items():
            if key == "states" and r["state"] not in value:
                return False
            if key == "since" and r["created_at"] < value:
                return False
            if key == "until" and r["created_at"] >= value:
                return False
            if key not in ("states", "since", "until") and r[key] != value:
                return False
        return True

    return [r["id"] for r in sorted(filter(keep, rows), key=lambda r: (r["created_at"], r["id"]), reverse=True)]


async def insert_messages(pool: asyncpg.Pool, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write *rows* (app_id, recipient, body, state, status, type, tag, job_id, created_at) as messages in one
    statement, in order; each row gets its `id`."""
    ids = await pool.fetch(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status, type, tag, job_id, created_at) "
        "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[], "
        "$7::text[], $8::bigint[], $9::timestamptz[]) RETURNING id",
        *([r[k] for r in rows] for k in ("app_id", "recipient", "body", "state", "status", "type", "tag", "job_id",
                                          "created_at")))
    for r, rec in zip(rows, ids, strict=True):
        r["id"] = rec["id"]
    return rows
