"""What the tracking list should show for a set of rows: the reference the list's tests compare pages with."""

from __future__ import annotations

from typing import Any


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
