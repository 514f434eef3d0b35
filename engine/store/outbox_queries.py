"""SQL of the callback outbox (engine_outbox), by name. Nothing else builds outbox SQL.

Times: every statement takes `$offset`, seconds added to the database's now(), so the deliverer's
clock (real in production: offset 0; shifted in tests) decides what is due, leased or too old.
A claimed row's `next_attempt_at` is its lease end, so a deliverer that dies simply lets its rows
come due again.
"""

from __future__ import annotations

from typing import Final

# $1 offset, $2 deliverer id, $3 batch size, $4 lease seconds, $5 apps not to claim for (their lanes are full).
CLAIM: Final = """
WITH picked AS (
    SELECT id FROM engine_outbox
    WHERE state = 'pending' AND next_attempt_at <= now() + make_interval(secs => $1)
      AND app_id <> ALL($5::bigint[])
    ORDER BY next_attempt_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE engine_outbox b
SET claimed_by = $2, lease_until = now() + make_interval(secs => $1::float8 + $4::float8),
    next_attempt_at = now() + make_interval(secs => $1::float8 + $4::float8)
FROM picked, engine_app a
WHERE b.id = picked.id AND a.id = b.app_id
RETURNING b.id, b.event_id::text AS event_id, b.app_id, b.type, b.payload, b.attempts,
          a.gateway_url, a.callback_secret, a.callback_concurrency, b.inbound_id
"""
# Seconds until the next pending row (of an app with room) is due; NULL when none.
NEXT_DUE: Final = """
SELECT extract(epoch FROM (min(next_attempt_at) - (now() + make_interval(secs => $1))))::float8
FROM engine_outbox WHERE state = 'pending' AND app_id <> ALL($2::bigint[])
"""
# Keep this deliverer's claims (queued in memory behind a busy gateway, or in flight) leased.
HEARTBEAT: Final = """
UPDATE engine_outbox
SET lease_until = now() + make_interval(secs => $2::float8 + $3::float8),
    next_attempt_at = now() + make_interval(secs => $2::float8 + $3::float8)
WHERE claimed_by = $1 AND state = 'pending'
"""
# $1 ids the gateway answered 2xx, $2 offset. A success is recorded whoever holds the lease now.
MARK_DELIVERED: Final = """
UPDATE engine_outbox b
SET state = 'delivered', delivered_at = now() + make_interval(secs => $2), attempts = b.attempts + 1,
    claimed_by = NULL, lease_until = NULL
FROM unnest($1::bigint[]) AS u(id)
WHERE b.id = u.id AND b.state <> 'delivered'
"""
# A gateway's answers to incoming_message events ($1 outbox ids), stored once per event with its 'delivered' mark;
# the inbound processor turns each into a reply, a closed session or a reprocessed MO.
RECORD_ANSWERS: Final = """
INSERT INTO engine_app_answer (outbox_id, inbound_id, app_id, body, close_session, reprocess)
SELECT b.id, b.inbound_id, b.app_id, u.body, u.close_session, u.reprocess
FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::text[]) AS u(id, body, close_session, reprocess)
JOIN engine_outbox b ON b.id = u.id
WHERE b.inbound_id IS NOT NULL
ORDER BY b.id
ON CONFLICT (outbox_id) DO NOTHING
"""
# $1 ids, $2 offset, $3 max age (s), $4 backoff delays (s), $5 errors, $6 give up now, $7 deliverer id.
# Past max age -> dead; otherwise retry after the delay, but never later than the max-age deadline
# (so the last attempt happens right at it).
MARK_FAILED: Final = """
UPDATE engine_outbox b
SET attempts = b.attempts + 1, last_error = u.err, claimed_by = NULL, lease_until = NULL,
    state = CASE WHEN u.dead OR b.created_at + make_interval(secs => $3) <= now() + make_interval(secs => $2)
                 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = least(now() + make_interval(secs => $2 + u.delay), b.created_at + make_interval(secs => $3))
FROM unnest($1::bigint[], $4::float8[], $5::text[], $6::bool[]) AS u(id, delay, err, dead)
WHERE b.id = u.id AND b.state = 'pending' AND b.claimed_by = $7
"""
# On shutdown: claims not attempted go back at once.
RELEASE: Final = """
UPDATE engine_outbox SET claimed_by = NULL, lease_until = NULL, next_attempt_at = now() + make_interval(secs => $2)
WHERE claimed_by = $1 AND state = 'pending'
"""

# ---- reporting (engine app status) ------------------------------------------------------------
COUNTS_BY_STATE: Final = """
SELECT state, count(*)::int AS n FROM engine_outbox WHERE app_id = $1 GROUP BY state
"""
RECENT_DEAD: Final = """
SELECT event_id::text AS event_id, type, attempts, last_error, created_at, payload
FROM engine_outbox WHERE app_id = $1 AND state = 'dead'
ORDER BY id DESC LIMIT $2
"""

# ---- emitting (engine.store.outbox.enqueue_events, in the caller's transaction) -----------------
# Every event is kept, in the order given, whether or not its app has a gateway URL: the deliverer
# dead-letters those of apps without one ('no gateway_url'), so `engine app status` shows them.
# (Delivery reports are the exception: they are written only for apps with a gateway, see queries.py.)
ENQUEUE_MANY: Final = """
INSERT INTO engine_outbox (app_id, type, payload)
SELECT u.app_id, u.type, u.payload::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS u(app_id, type, payload, i)
ORDER BY u.i
RETURNING event_id::text AS event_id
"""
