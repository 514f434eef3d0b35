"""Named SQL for worker registration, DID leases and message leases (several workers on one database)."""

from __future__ import annotations

from typing import Final

REGISTER_WORKER: Final = """
INSERT INTO engine_worker (id, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
"""
WORKER_HEARTBEAT: Final = "UPDATE engine_worker SET heartbeat_at = now() WHERE id = $1"
DEREGISTER_WORKER: Final = "DELETE FROM engine_worker WHERE id = $1"
ALIVE_WORKERS: Final = """
SELECT count(*)::int FROM engine_worker WHERE heartbeat_at > now() - make_interval(secs => $1)
"""
# Extend my leases; returns the DIDs I still hold.
RENEW_LEASES: Final = """
UPDATE engine_did_lease SET lease_until = now() + make_interval(secs => $2)
WHERE worker_id = $1 AND lease_until > now()
RETURNING did_id
"""
# Take free (never leased or expired) enabled DIDs, up to *want* per SMSC, in one statement.
# The conflict clause re-checks expiry under the row lock, so two workers never both win a DID.
ACQUIRE_LEASES: Final = """
WITH want AS (
    SELECT smsc_id, n FROM unnest($3::bigint[], $4::int[]) AS w(smsc_id, n) WHERE n > 0
), free AS (
    SELECT d.id, d.smsc_id,
           row_number() OVER (PARTITION BY d.smsc_id ORDER BY l.did_id IS NOT NULL, d.id) AS rn
    FROM engine_did d
    LEFT JOIN engine_did_lease l ON l.did_id = d.id
    WHERE d.enabled AND (l.did_id IS NULL OR l.lease_until <= now())
      AND d.smsc_id IN (SELECT smsc_id FROM want)
)
INSERT INTO engine_did_lease (did_id, worker_id, lease_until)
SELECT f.id, $1, now() + make_interval(secs => $2)
FROM free f JOIN want w ON w.smsc_id = f.smsc_id
WHERE f.rn <= w.n
ON CONFLICT (did_id) DO UPDATE
    SET worker_id = EXCLUDED.worker_id, lease_until = EXCLUDED.lease_until, acquired_at = now()
    WHERE engine_did_lease.lease_until <= now()
RETURNING did_id
"""
RELEASE_LEASES: Final = "DELETE FROM engine_did_lease WHERE worker_id = $1 AND did_id = ANY($2::bigint[])"
RELEASE_ALL_LEASES: Final = "DELETE FROM engine_did_lease WHERE worker_id = $1"

# Messages this worker holds but will not send (their DID moved, or marking them failed before any
# request was made): back to the queue. Also undoes a 'sending' mark whose reply was lost with the
# connection — no request was made for these, so they are safe to send again.
REQUEUE_UNSENT: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now(),
    due_at = now() + make_interval(secs => $3),
    attempts = CASE WHEN o.state = 'sending' THEN greatest(o.attempts - 1, 0) ELSE o.attempts END,
    sending_at = CASE WHEN o.state = 'sending' THEN NULL ELSE o.sending_at END
WHERE o.id = ANY($1::bigint[]) AND o.claimed_by = $2 AND o.state IN ('claimed', 'sending')
"""
# Claimed messages whose batch failed half-way (the database went away mid-batch): back to the queue, but only
# those still merely claimed — one already marked 'sending' may be on its way to the carrier and stays as it is.
# Every row a worker holds only claimed (found through the partial index engine_outbound_leased, as HEARTBEAT
# finds them), locked in id order as the other housekeeping statements lock.
REQUEUE_ALL_CLAIMED: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now(),
    due_at = now() + make_interval(secs => $2)
FROM (SELECT id FROM engine_outbound WHERE claimed_by = $1 AND state = 'claimed' ORDER BY id FOR UPDATE) AS s
WHERE o.id = s.id
"""
REQUEUE_CLAIMED: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now(),
    due_at = now() + make_interval(secs => $3)
WHERE o.id = ANY($1::bigint[]) AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $2
"""

# ---- message leases: heartbeat, release, recovery --------------------------------------------
# The housekeeping statements below lock their rows in id order and skip rows locked right now (a
# status write in progress): the status statements (queries.py) also lock in id order, so the two never deadlock,
# and a skipped row is simply seen again on the next round.
# Renews our sends in flight, and our claims that we still hold in memory ($3): a claimed row we no longer hold
# (whatever path dropped it) is not renewed, so its lease runs out and REQUEUE_EXPIRED returns it to the queue.
# Renewing every row claimed by us kept any such row claimed, and unsent, for as long as we lived.
HEARTBEAT: Final = """
UPDATE engine_outbound o SET lease_until = now() + make_interval(secs => $2)
FROM (SELECT id FROM engine_outbound WHERE claimed_by = $1 AND state IN ('claimed', 'sending')
        AND (state = 'sending' OR id = ANY($3::bigint[]))
      ORDER BY id FOR UPDATE SKIP LOCKED) AS s
WHERE o.id = s.id
"""
RELEASE: Final = """
UPDATE engine_outbound o SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now()
FROM (SELECT id FROM engine_outbound WHERE claimed_by = $1 AND state = 'claimed' ORDER BY id FOR UPDATE) AS s
WHERE o.id = s.id
"""
# Leases of vanished workers, $1 = 'claimed' or 'sending': back to the queue. Unsent claims always; sends
# that may have reached the carrier only at-least-once. (The literal IN list lets a generic plan use the
# partial index engine_outbound_leased, whose predicate it is.)
REQUEUE_EXPIRED: Final = """
UPDATE engine_outbound o SET state = 'queued', claimed_by = NULL, lease_until = NULL, updated_at = now()
FROM (SELECT id FROM engine_outbound
      WHERE state IN ('claimed', 'sending') AND state = $1::text AND lease_until < now()
      ORDER BY id FOR UPDATE SKIP LOCKED) AS s
WHERE o.id = s.id
"""
# A send that may have reached the carrier, at-most-once: 'unknown' (reconciled if its callback arrives).
RECOVER_SENDING_UNKNOWN: Final = """
UPDATE engine_outbound o
SET state = 'unknown', status_rank = greatest(o.status_rank, 5), claimed_by = NULL, lease_until = NULL,
    updated_at = now()
FROM (SELECT id FROM engine_outbound WHERE state = 'sending' AND lease_until < now()
      ORDER BY id FOR UPDATE SKIP LOCKED) AS s
WHERE o.id = s.id
"""
