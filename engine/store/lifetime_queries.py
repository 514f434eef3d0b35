"""SQL of message lifetime, quiet hours and retention, by name (see engine/store/lifetime.py for their use).

The expiry sweep writes the same delivery reports as every other status change (queries._DELIVERY_REPORTS);
purging walks the tables in primary-key order, a small batch per transaction, skipping locked rows, so it never
holds a lock the send path waits for.
"""

from __future__ import annotations

from typing import Final

from engine.store.queries import _DELIVERY_REPORTS

# States a message leaves only through a carrier callback that will not come after the retention ('unknown').
PURGEABLE_STATES: Final = ("delivered", "undelivered", "failed", "suppressed", "canceled", "expired", "unknown")
_PURGEABLE: Final = ", ".join(f"'{s}'" for s in PURGEABLE_STATES)

# ---- quiet hours ------------------------------------------------------------------------------------------
# Claimed messages inside the recipient's quiet hours go back to the queue, each due after its delay ($2 s) —
# not counted as a deferral for its DID's turn ($3: our worker id; only rows we still hold).
HOLD_QUIET: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, due_at = now() + make_interval(secs => u.delay),
    updated_at = now()
FROM unnest($1::bigint[], $2::float8[]) AS u(id, delay)
WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $3
"""

# ---- the expiry sweep ---------------------------------------------------------------------------------------
# Queued messages whose lifetime ended by $1 (the worker's clock) become 'expired' (status 2, reason 'expired'),
# with their delivery reports, at most $2 of each kind per round: those past their own expiry, and per app with
# a default lifetime those queued longer than it since they were due. Rows locked right now (being claimed) are
# skipped: admission sees them expired. Returns how many expired.
EXPIRE_QUEUED: Final = f"""
WITH own AS (
    SELECT o.id, o.status AS old_status FROM engine_outbound o
    WHERE o.state = 'queued' AND o.expires_at IS NOT NULL AND o.expires_at <= $1::timestamptz
    ORDER BY o.expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), lifetime AS (
    SELECT x.id, x.old_status FROM engine_app a
    CROSS JOIN LATERAL (
        SELECT o.id, o.status AS old_status FROM engine_outbound o
        WHERE o.app_id = a.id AND o.state = 'queued' AND o.expires_at IS NULL AND o.kind <> 'compliance'
          AND coalesce(o.send_at, o.created_at) <= $1::timestamptz - a.valid_for
        ORDER BY coalesce(o.send_at, o.created_at)
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) AS x
    WHERE a.valid_for IS NOT NULL
), doomed AS (
    SELECT * FROM own UNION SELECT * FROM lifetime
), upd AS (
    -- By primary key (a join with `doomed` let a generic plan hash-join it against a scan of the table); the rows
    -- are ours already (locked above, never waited for).
    UPDATE engine_outbound o
    SET state = 'expired', status = 2, status_rank = 100, reason = 'expired',
        error_message = 'the message expired before it could be sent', final_at = now(), updated_at = now()
    WHERE o.id = ANY(ARRAY(SELECT id FROM doomed)) AND o.state = 'queued' AND o.status_rank < 100
    RETURNING o.id, o.app_id, o.status, o.status_rank, o.error_code, o.reason,
              (SELECT d.old_status FROM doomed d WHERE d.id = o.id) AS old_status
), reports AS ({_DELIVERY_REPORTS}
)
SELECT count(*)::int FROM upd
"""

# ---- recipients' time zones ----------------------------------------------------------------------------------
SET_CONTACT_ZONE: Final = """
INSERT INTO engine_contact_zone (app_id, phone, time_zone) VALUES ($1, $2, $3)
ON CONFLICT (app_id, phone) DO UPDATE SET time_zone = EXCLUDED.time_zone, updated_at = now()
"""
CLEAR_CONTACT_ZONE: Final = "DELETE FROM engine_contact_zone WHERE app_id = $1 AND phone = $2"
CONTACT_ZONE: Final = "SELECT time_zone FROM engine_contact_zone WHERE app_id = $1 AND phone = $2"

# ---- retention ---------------------------------------------------------------------------------------------
APP_ID: Final = "SELECT id FROM engine_app WHERE name = $1"
# The apps a purge covers ($1: one app's id, or NULL for all) with the age beyond which their data goes: $2 (an
# interval's text, e.g. '90 days') for every app, else each app's retention; and the youngest such cutoff, after
# which nothing can be purged. $3 = now.
PURGE_SCOPE: Final = """
SELECT a.id, a.name, a.retention::text AS retention,
       $3::timestamptz - coalesce($2::text::interval, a.retention) AS cutoff
FROM engine_app a
WHERE $1::bigint IS NULL OR a.id = $1
ORDER BY a.id
"""
# One batch of final messages: the next $2 rows after id $1 in primary-key order; of those, the final ones of the
# apps in scope ($3 ids, $4 their cutoffs) created before their app's cutoff, and not a part (a part goes with its
# first part, by cascade, and is counted with it), skipping rows locked right now. Deleted unless $5 (a dry run).
# Returns the batch's last id and oldest creation time (the walk stops once a whole batch is younger than every
# cutoff), and the counts.
PURGE_MESSAGES: Final = f"""
WITH batch AS (
    SELECT o.id, o.app_id, o.created_at, o.state, o.part_of FROM engine_outbound o
    WHERE o.id > $1 ORDER BY o.id LIMIT $2
), doomed AS (
    -- Rows by primary key throughout: a join here let a generic plan hash-join against a scan of the table.
    SELECT o.id FROM engine_outbound o
    WHERE o.id = ANY(ARRAY(
              SELECT b.id FROM batch b JOIN unnest($3::bigint[], $4::timestamptz[]) AS s(app_id, cutoff)
                ON s.app_id = b.app_id
              WHERE b.state IN ({_PURGEABLE}) AND b.created_at < s.cutoff AND b.part_of IS NULL))
      AND o.state IN ({_PURGEABLE}) AND o.part_of IS NULL
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM engine_outbound o WHERE o.id = ANY(ARRAY(SELECT id FROM doomed)) AND NOT $5::bool RETURNING o.id
)
SELECT (SELECT max(id) FROM batch) AS last_id, (SELECT min(created_at) FROM batch) AS oldest,
       (SELECT count(*)::int FROM doomed)
       + (SELECT count(*)::int FROM engine_outbound p WHERE p.part_of = ANY(ARRAY(SELECT id FROM doomed))) AS matched,
       (SELECT count(*)::int FROM gone)
       + (SELECT count(*)::int FROM engine_outbound p WHERE p.part_of = ANY(ARRAY(SELECT id FROM gone))) AS deleted
"""
# The same walk over the callback outbox: events delivered before their app's cutoff.
PURGE_EVENTS: Final = """
WITH batch AS (
    SELECT e.id, e.app_id, e.created_at, e.state, e.delivered_at FROM engine_outbox e
    WHERE e.id > $1 ORDER BY e.id LIMIT $2
), doomed AS (
    SELECT e.id FROM engine_outbox e
    WHERE e.id = ANY(ARRAY(
              SELECT b.id FROM batch b JOIN unnest($3::bigint[], $4::timestamptz[]) AS s(app_id, cutoff)
                ON s.app_id = b.app_id
              WHERE b.state = 'delivered' AND b.delivered_at < s.cutoff))
      AND e.state = 'delivered'
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM engine_outbox e WHERE e.id = ANY(ARRAY(SELECT id FROM doomed)) AND NOT $5::bool RETURNING e.id
)
SELECT (SELECT max(id) FROM batch) AS last_id, (SELECT min(created_at) FROM batch) AS oldest,
       (SELECT count(*)::int FROM doomed) AS matched, (SELECT count(*)::int FROM gone) AS deleted
"""
