"""SQL of notification jobs (engine_job and its messages), by name; see engine/store/jobs.py for their use.

A job's messages are found through engine_outbound_job (job_id, state): counts by state are index-only scans.
"""

from __future__ import annotations

from typing import Final

# States that may still change: a job is finished when none of its messages is in one of them.
# ('unknown' is final for the job: a send cut off mid-request, reconciled only if the carrier calls back.)
_OPEN: Final = "('queued', 'claimed', 'sending', 'sent')"

_JOB_COLUMNS: Final = """
j.id, j.app_id, a.name AS app, j.source, j.name, j.template, j.type, j.category, j.tag, j.send_at, j.state, j.total,
j.created_at, j.updated_at, j.finished_at"""

# A job with nothing to send is finished at once.
INSERT_JOB: Final = """
INSERT INTO engine_job (app_id, source, name, template, type, category, tag, send_at, total, state, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
        CASE WHEN $9::int = 0 THEN 'done' ELSE 'running' END, CASE WHEN $9::int = 0 THEN now() END)
RETURNING id, created_at
"""
# Ids for a COPY whose rows must point at each other (parts 2..n of a split message at part 1): in row order.
ALLOCATE_IDS: Final = """
SELECT array_agg(nextval(pg_get_serial_sequence('engine_outbound', 'id')) ORDER BY i)
FROM generate_series(1, $1::int) AS i
"""
# One job of one app ($2; NULL = any app, for operators).
JOB: Final = f"""
SELECT {_JOB_COLUMNS}
FROM engine_job j JOIN engine_app a ON a.id = j.app_id
WHERE j.id = $1 AND ($2::bigint IS NULL OR j.app_id = $2)
"""
# pause/resume/cancel: the job row first, FOR UPDATE (engine_outbound_job_requeue waits on it: migration 0012).
LOCK_JOB: Final = """
SELECT state FROM engine_job WHERE id = $1 AND ($2::bigint IS NULL OR app_id = $2) FOR UPDATE
"""
SET_JOB_STATE: Final = "UPDATE engine_job SET state = $2, updated_at = now() WHERE id = $1"
# Paused: its queued messages are never due (the claim passes them by, an idle worker does not wake for them).
PAUSE_MESSAGES: Final = """
UPDATE engine_outbound SET due_at = 'infinity', updated_at = now() WHERE job_id = $1 AND state = 'queued'
"""
# Resumed: due again at their requested time, or now.
RESUME_MESSAGES: Final = """
UPDATE engine_outbound SET due_at = greatest(coalesce(send_at, now()), now()), updated_at = now()
WHERE job_id = $1 AND state = 'queued'
"""
# What cancel_messages does to a queued message (carousel_queries.CANCEL_QUEUED), for all of the job's.
CANCEL_MESSAGES: Final = """
UPDATE engine_outbound
SET state = 'canceled', status = 2, status_rank = 100, final_at = now(), updated_at = now()
WHERE job_id = $1 AND state = 'queued'
"""
# Resumed messages wake idle workers like new rows do (the insert trigger's channel).
WAKE_WORKERS: Final = "SELECT pg_notify('engine_outbound', '')"
# Jobs none of whose messages may still change: done (a canceled job keeps its state), finished_at set. $1 one
# job, $2 one app (either NULL = all).
FINISH_JOBS: Final = f"""
UPDATE engine_job j
SET state = CASE WHEN j.state = 'canceled' THEN 'canceled' ELSE 'done' END, finished_at = now(), updated_at = now()
WHERE j.finished_at IS NULL AND ($1::bigint IS NULL OR j.id = $1) AND ($2::bigint IS NULL OR j.app_id = $2)
  AND NOT EXISTS (SELECT 1 FROM engine_outbound o WHERE o.job_id = j.id AND o.state IN {_OPEN})
RETURNING j.id
"""
NOW: Final = "SELECT now()"
JOB_COUNTS: Final = """
SELECT state, count(*)::int AS n FROM engine_outbound WHERE job_id = $1 GROUP BY state
"""
# Messages of the job handed to the carrier in the last $2 seconds (its rate).
JOB_RECENT_SENDS: Final = """
SELECT count(*)::int FROM engine_outbound
WHERE job_id = $1 AND sending_at > now() - make_interval(secs => $2::float8)
"""
# The newest jobs first ($1 app or NULL = all, $2 how many), with how many of their messages are still open.
LIST_JOBS: Final = f"""
SELECT {_JOB_COLUMNS},
       (SELECT count(*)::int FROM engine_outbound o WHERE o.job_id = j.id AND o.state IN {_OPEN}) AS open
FROM engine_job j JOIN engine_app a ON a.id = j.app_id
WHERE ($1::bigint IS NULL OR j.app_id = $1)
ORDER BY j.id DESC
LIMIT $2
"""
# What the app's pool may send per second: its enabled DIDs' limits, capped by the SMSC's and the account's.
POOL_CAPACITY: Final = """
SELECT (SELECT sum(d.limit_per_min)::float8 / 60 FROM engine_did d WHERE d.smsc_id = s.id AND d.enabled) AS dids,
       s.limit_per_min::float8 / 60 AS smsc, p.max_per_second::float8 AS account
FROM engine_app a JOIN engine_smsc s ON s.id = a.smsc_id LEFT JOIN engine_provider p ON p.id = s.provider_id
WHERE a.id = $1
"""
