"""SQL of the message queue's send path (submit, claim, admission, marking, carrier statuses) and its counts, by
name. Nothing outside engine/store builds SQL.

Its siblings hold the rest, by aggregate: `admin_queries` (apps, SMSCs, carrier accounts, DIDs),
`topology_queries` (what the worker paces), `carousel_queries` (the HTTP API), `lease_queries` (workers, DID
leases and message leases: heartbeat, release, requeue), `outbox_queries` (callback events), `inbound_queries`
(MOs, consent, sessions, loops). Values always travel as parameters; batches travel as arrays and are UNNESTed.
"""

from __future__ import annotations

from typing import Final

# ---- submit ----------------------------------------------------------------------------------
SUBMIT_MANY: Final = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at, type, category, expires_at)
SELECT $1, r, b, t, s, coalesce(s, now()), ty, coalesce(ca, 'transactional'), ex
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::timestamptz[])
     WITH ORDINALITY AS u(r, b, t, s, ty, ca, ex, i)
ORDER BY u.i
RETURNING id
"""

# ---- the claim / send cycle ----------------------------------------------------------------
# The claim. Due queued rows are taken by FLOW: each app's own messages per priority class (0 the engine's answers
# and replies to MOs, 1 single transactional messages, 2 marketing), and each running job (class 2). A flow is
# probed first (one index lookup); then classes 0 and 1 may fill the whole batch, in that order, and the bulk
# class shares what is left fairly: every app with bulk work an equal part, split equally between its flows (its
# own marketing and each of its jobs). Rows interleave by their rank within their flow, so one large job cannot
# starve another job or app on the same pool. Each flow's rows come from its own partial index, in order, locked
# with SKIP LOCKED (a second worker takes the next ones); rows locked but not taken are free at commit.
CLAIM: Final = """
WITH flows AS (
    SELECT a.app_id, c.priority, NULL::bigint AS job_id
    FROM unnest($4::bigint[]) AS a(app_id)
    CROSS JOIN (VALUES (0::smallint), (1::smallint), (2::smallint)) AS c(priority)
    -- (probes written as LATERAL … LIMIT 1, and every ORDER BY spelled in its index's own order, so that no plan
    -- can turn them into a join over all queued rows or walk the global due index past other flows' rows)
    CROSS JOIN LATERAL (SELECT 1 FROM engine_outbound o
                        WHERE o.state = 'queued' AND o.job_id IS NULL AND o.app_id = a.app_id
                          AND o.priority = c.priority AND o.due_at <= now()
                        ORDER BY o.app_id, o.priority, o.due_at LIMIT 1) AS e
    UNION ALL
    SELECT j.app_id, 2::smallint, j.id
    FROM engine_job j
    CROSS JOIN LATERAL (SELECT 1 FROM engine_outbound o
                        WHERE o.state = 'queued' AND o.job_id = j.id AND o.due_at <= now()
                        ORDER BY o.job_id, o.due_at LIMIT 1) AS e
    WHERE j.state = 'running' AND j.app_id = ANY($4::bigint[])
), quotas AS (
    SELECT f.app_id, f.priority, f.job_id,
           CASE WHEN f.priority < 2 THEN $2::int
                ELSE ceil($2::float8
                          / (SELECT count(DISTINCT b.app_id) FROM flows b WHERE b.priority = 2)
                          / count(*) FILTER (WHERE f.priority = 2) OVER (PARTITION BY f.app_id))::int
           END AS quota
    FROM flows f
), app_rows AS (
    SELECT r.id, r.due_at, q.app_id, q.priority, q.job_id
    FROM quotas q
    CROSS JOIN LATERAL (
        SELECT o.id, o.due_at FROM engine_outbound o
        WHERE o.state = 'queued' AND o.job_id IS NULL AND o.app_id = q.app_id AND o.priority = q.priority
          AND o.due_at <= now() {pinned}
        ORDER BY o.app_id, o.priority, o.due_at, o.id LIMIT q.quota FOR UPDATE SKIP LOCKED
    ) r
    WHERE q.job_id IS NULL
), job_rows AS (
    SELECT r.id, r.due_at, q.app_id, q.priority, q.job_id
    FROM quotas q
    CROSS JOIN LATERAL (
        SELECT o.id, o.due_at FROM engine_outbound o
        WHERE o.state = 'queued' AND o.job_id = q.job_id AND o.due_at <= now() {pinned}
        ORDER BY o.job_id, o.due_at, o.id LIMIT q.quota FOR UPDATE SKIP LOCKED
    ) r
    WHERE q.job_id IS NOT NULL
), candidates AS (
    SELECT u.id, u.priority, row_number() OVER (PARTITION BY u.app_id, u.priority, u.job_id
                                                ORDER BY u.due_at, u.id) AS rank
    FROM (SELECT * FROM app_rows UNION ALL SELECT * FROM job_rows) u
), picks AS (
    SELECT c.id, row_number() OVER (ORDER BY c.priority, c.rank, c.id) AS ord
    FROM candidates c ORDER BY c.priority, c.rank, c.id LIMIT $2
), claimed AS (
    UPDATE engine_outbound o
    SET state = 'claimed', claimed_by = $1, lease_until = now() + make_interval(secs => $3), updated_at = now()
    -- By primary key: a join with the picks let the generic plan hash-join them against a scan of the whole table.
    WHERE o.id = ANY(ARRAY(SELECT p.id FROM picks p))
    RETURNING o.id, o.app_id, o.recipient, o.body, o.tag, o.attempts, o.defers, o.kind, o.part_of, o.from_did,
              o.priority
)
-- In the order chosen (classes, then the flows interleaved), which the DIDs' queues keep.
SELECT c.* FROM claimed c JOIN picks p ON p.id = c.id ORDER BY p.ord
""".format(pinned="""
           -- a conversation pinned to a DID another worker holds is that worker's to send
           AND (o.tag IS NULL OR NOT EXISTS (
                 SELECT 1 FROM engine_tag_did t JOIN engine_did_lease l ON l.did_id = t.did_id
                 WHERE t.app_id = o.app_id AND t.recipient = o.recipient AND t.tag = o.tag
                   AND l.worker_id <> $1 AND l.lease_until > now()))
           -- so is a reply that must go out from the DID the phone texted
           AND (o.from_did IS NULL OR NOT EXISTS (
                 SELECT 1 FROM engine_did_lease l
                 WHERE l.did_id = o.from_did AND l.worker_id <> $1 AND l.lease_until > now()))""")
# Seconds until the next queued row of the apps $1 (their own messages by class, and their running jobs) is due.
NEXT_DUE: Final = """
SELECT extract(epoch FROM (min(s.due_at) - now()))::float8 FROM (
    SELECT (SELECT o.due_at FROM engine_outbound o
            WHERE o.state = 'queued' AND o.job_id IS NULL AND o.app_id = a.app_id AND o.priority = c.priority
            ORDER BY o.due_at LIMIT 1) AS due_at
    FROM unnest($1::bigint[]) AS a(app_id)
    CROSS JOIN (VALUES (0::smallint), (1::smallint), (2::smallint)) AS c(priority)
    UNION ALL
    SELECT (SELECT o.due_at FROM engine_outbound o WHERE o.state = 'queued' AND o.job_id = j.id
            ORDER BY o.due_at LIMIT 1)
    FROM engine_job j WHERE j.state = 'running' AND j.app_id = ANY($1::bigint[])
) AS s
-- (a paused job's messages wait with due_at = infinity, engine.store.jobs: never due, and PostgreSQL cannot
-- subtract an infinite timestamp)
WHERE s.due_at < 'infinity'
"""
# Admission's one batched lookup per claim. Per claimed id ($1), in order (i): is the phone blacklisted for the
# app; how many earlier messages went to it within $3 seconds (the app's flood period; 0 = not checked), leaving
# out those refused for blacklist or flood and the engine's own STOP/HELP answers (the HTTP door counts the
# same, see carousel_queries.RECENT_COUNTS); and does an earlier live message of the app to the phone, within
# its duplicate window, hold the body $2 (the first part as it will be sent; NULL = not checked). Then its
# lifetime (its own expiry, else the app's default lifetime from when it was due; the engine's STOP/HELP answers
# never expire) and, for a marketing message, whether the phone is subscribed to the app and its stored zone.
# A resend (resent_from set: a person asked for it) is never a duplicate; every other rule applies to it.
ADMISSION_FACTS: Final = """
SELECT c.i::int AS i,
       EXISTS (SELECT 1 FROM engine_blacklist b WHERE b.app_id = m.app_id AND b.phone = m.recipient) AS blacklisted,
       CASE WHEN c.flood > 0 THEN (
           SELECT count(*)::int FROM engine_outbound p
           WHERE p.recipient = m.recipient AND p.app_id = m.app_id AND p.id < m.id
             AND p.created_at > m.created_at - make_interval(secs => c.flood) AND p.kind <> 'compliance'
             AND p.reason IS DISTINCT FROM 'blacklisted' AND p.reason IS DISTINCT FROM 'flood_limit'
       ) ELSE 0 END AS flood_used,
       c.head IS NOT NULL AND m.resent_from IS NULL AND EXISTS (
           SELECT 1 FROM engine_outbound p
           WHERE p.recipient = m.recipient AND p.app_id = m.app_id AND p.id < m.id
             AND p.created_at >= m.created_at - a.dedup_window AND p.created_at <= m.created_at
             AND p.body = c.head AND p.state NOT IN ('suppressed', 'canceled', 'failed', 'undelivered', 'expired')
       ) AS duplicate,
       CASE WHEN m.kind <> 'compliance'
            THEN coalesce(m.expires_at, coalesce(m.send_at, m.created_at) + a.valid_for) END AS expires_at,
       m.category = 'marketing' AS marketing,
       m.category = 'marketing' AND EXISTS (
           SELECT 1 FROM engine_subscription s WHERE s.app_id = m.app_id AND s.phone = m.recipient) AS subscribed,
       CASE WHEN m.category = 'marketing' THEN (
           SELECT z.time_zone FROM engine_contact_zone z WHERE z.app_id = m.app_id AND z.phone = m.recipient)
       END AS time_zone
FROM unnest($1::bigint[], $2::text[], $3::float8[]) WITH ORDINALITY AS c(id, head, flood, i)
JOIN engine_outbound m ON m.id = c.id
JOIN engine_app a ON a.id = m.app_id
ORDER BY c.i
"""
# A claimed message for a single-SMS carrier becomes its `(i/n) ` parts: the row keeps part 1 ($2, the caller's
# id still tracks it), parts 2..n are new rows ($3 owner id, $4 body, in order) linked by part_of, queued now,
# with part 1's type, category and expiry. Engine code only (compliance messages may be split too: the caller
# sets engine.compliance).
SPLIT_INTO_PARTS: Final = """
WITH head AS (
    UPDATE engine_outbound o SET body = u.head, updated_at = now()
    FROM unnest($1::bigint[], $2::text[]) AS u(id, head)
    WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $5
    RETURNING o.id, o.app_id, o.recipient, o.tag, o.send_at, o.kind, o.created_at, o.from_did, o.in_reply_to, o.job_id,
              o.type, o.category, o.expires_at
)
INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at, kind, part_of, created_at, from_did,
                             in_reply_to, job_id, type, category, expires_at)
SELECT h.app_id, h.recipient, p.body, h.tag, h.send_at, now(), h.kind, h.id, h.created_at, h.from_did,
       h.in_reply_to, h.job_id, h.type, h.category, h.expires_at
FROM unnest($3::bigint[], $4::text[]) WITH ORDINALITY AS p(owner, body, i)
JOIN head h ON h.id = p.owner
ORDER BY p.i
RETURNING id
"""
# Of ids $1 that MARK_SENDING left unmarked, those still claimed by us ($2), and whether the phone is blacklisted
# for the app (else it was left for its expiry; the ids not returned lost their claim).
UNMARKED_CLAIMS: Final = """
SELECT o.id,
       o.kind <> 'compliance' AND EXISTS (
           SELECT 1 FROM engine_blacklist b WHERE b.app_id = o.app_id AND b.phone = o.recipient) AS blacklisted
FROM engine_outbound o
WHERE o.id = ANY($1::bigint[]) AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $2
"""
# Existing sticky DIDs for (app, recipient, tag) triples; i is the 1-based position in the arrays.
TAGS_LOOKUP: Final = """
SELECT u.i, t.did_id
FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS u(app_id, recipient, tag, i)
JOIN engine_tag_did t ON t.app_id = u.app_id AND t.recipient = u.recipient AND t.tag = u.tag
"""
TAGS_ASSIGN: Final = """
INSERT INTO engine_tag_did (app_id, recipient, tag, did_id)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
ON CONFLICT (app_id, recipient, tag) DO NOTHING
"""
REMOVE_TAG: Final = "DELETE FROM engine_tag_did WHERE app_id = $1 AND recipient = $2 AND tag = $3"
DEFER_SECONDS: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, defers = o.defers + 1,
    due_at = now() + make_interval(secs => u.delay), updated_at = now()
FROM unnest($1::bigint[], $2::float8[]) AS u(id, delay)
WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $3  -- by primary key (see MARK_SENDING)
"""
# The batched writes of the send path take their rows as ONE jsonb parameter (a JSON array of rows), not an array
# per column: the driver encoded arrays element by element in Python (~3 µs per row of 7 columns, ~0.5 as JSON),
# and PostgreSQL reads the JSON faster too. The LIMIT (every row) makes the planner expect few rows, as it does for
# an array parameter; expecting jsonb_array_elements' default 100, a generic plan hash-joined them against a scan
# of engine_outbound.
_JSON_ROWS: Final = "(SELECT e FROM jsonb_array_elements($1::jsonb) AS e LIMIT jsonb_array_length($1::jsonb)) AS r(e)"
# Returns the ids it marked as ONE array (decoded in C), not a row per message. $1: rows [id, DID id, sender,
# segments, encoding, expiry as epoch seconds or null] (see _JSON_ROWS); $2 us, $3 the lease in seconds, $4 now.
MARK_SENDING: Final = f"""
WITH marked AS (
    UPDATE engine_outbound o
    SET state = 'sending', did_id = u.did, sender = u.sender, segments = u.segments, encoding = u.encoding,
        attempts = o.attempts + 1, sending_at = now(), lease_until = now() + make_interval(secs => $3),
        sent_by = $2, updated_at = now(), reason = nullif(o.reason, 'throttled')  -- its wait for a daily cap is over
    FROM (SELECT (e->>0)::bigint AS id, (e->>1)::bigint AS did, e->>2 AS sender, (e->>3)::smallint AS segments,
                 e->>4 AS encoding, to_timestamp((e->>5)::float8) AS expires
          FROM {_JSON_ROWS}) AS u
    -- "claimed by us", written so that no index on state can serve it: the rows are found by primary key. With
    -- `o.state = 'claimed'` the planner could (and under load did) drive this from a partial index on state,
    -- whose 'claimed' range keeps a dead entry for every message claimed since the last vacuum (bitmap scans
    -- never mark them dead): each batch then cost O(messages sent lately) and Postgres CPU per message rose 8x.
    WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $2
      -- The last word of the blacklist: a phone that opted out while its message waited in memory gets nothing.
      AND (o.kind = 'compliance'
           OR NOT EXISTS (SELECT 1 FROM engine_blacklist b WHERE b.app_id = o.app_id AND b.phone = o.recipient))
      -- … and of the lifetime: a message whose expiry (as admission computed it) passed meanwhile ($4 = now).
      AND (u.expires IS NULL OR u.expires > $4::timestamptz)
    RETURNING o.id
)
SELECT coalesce(array_agg(id), '{{}}'::bigint[]) FROM marked
"""
# Status changes and their delivery_report callbacks are written by ONE statement (so atomically):
# `cur` locks the target rows in id order and reads the Carousel status they have now, `upd` applies
# the change, and the outbox gets one event per message whose Carousel code changed (0 -> 4, -> 1/2),
# for applications with a gateway URL. Intermediate carrier steps (queued -> sending -> sent, all 4)
# and 'unknown' (still 0) change nothing the application sees, so they report nothing.
_DELIVERY_REPORTS: Final = """
INSERT INTO engine_outbox (app_id, type, payload)
SELECT upd.app_id, 'delivery_report',
       jsonb_build_object('message_id', upd.id::text, 'status', upd.status::text,
                          'final', CASE WHEN upd.status_rank >= 100 THEN 'true' ELSE 'false' END)
       || CASE WHEN upd.status = 2 AND upd.error_code IS NOT NULL
               THEN jsonb_build_object('error_code', upd.error_code::text) ELSE '{}'::jsonb END
       || CASE WHEN upd.status = 2 AND upd.reason IS NOT NULL
               THEN jsonb_build_object('reason', upd.reason) ELSE '{}'::jsonb END
FROM upd JOIN engine_app a ON a.id = upd.app_id
WHERE a.gateway_url IS NOT NULL AND upd.status <> upd.old_status
ORDER BY upd.id
"""
# Shared by the status statements: lock the target rows in id order (one lock order, no deadlocks)
# and read the Carousel status they have now, so a report is written only for a real change.
_LOCK_CURRENT = """, cur AS MATERIALIZED (
    SELECT o.id, o.status AS old_status FROM engine_outbound o JOIN u ON u.id = o.id
    WHERE o.status_rank < u.rank
    ORDER BY o.id FOR UPDATE OF o
)"""
_REPORTED: Final = "RETURNING o.id, o.app_id, o.status, o.status_rank, o.error_code, o.reason, cur.old_status"

# The carrier accepted: rank 10 = queued at carrier, unless a callback already moved it further.
# $1: rows [id, sid, provider status] (see _JSON_ROWS).
MARK_ACCEPTED: Final = f"""
WITH u AS (
    SELECT (e->>0)::bigint AS id, e->>1 AS sid, e->>2 AS pstatus FROM {_JSON_ROWS}
), cur AS MATERIALIZED (
    SELECT o.id, o.status AS old_status FROM engine_outbound o JOIN u ON u.id = o.id
    ORDER BY o.id FOR UPDATE OF o
), upd AS (
    UPDATE engine_outbound o
    SET provider_message_id = u.sid, sent_at = now(), claimed_by = NULL, lease_until = NULL,
        state = CASE WHEN o.status_rank < 10 THEN 'sent' ELSE o.state END,
        status = CASE WHEN o.status_rank < 10 THEN 4 ELSE o.status END,
        provider_status = CASE WHEN o.status_rank < 10 THEN u.pstatus ELSE o.provider_status END,
        status_rank = greatest(o.status_rank, 10), updated_at = now()
    FROM u JOIN cur ON cur.id = u.id
    WHERE o.id = u.id AND o.retired_sid IS DISTINCT FROM u.sid  -- (the carrier refused that attempt: requeued)
    {_REPORTED}
){_DELIVERY_REPORTS}"""
# Engine-side final or intermediate outcomes (failed, suppressed, test delivered, unknown, …).
MARK_OUTCOME: Final = f"""
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::smallint[], $5::int[], $6::text[],
                         $7::smallint[], $8::text[], $9::text[])
         AS u(id, state, status, rank, code, msg, segments, encoding, reason)
){_LOCK_CURRENT}, upd AS (
    UPDATE engine_outbound o
    SET state = u.state, status = u.status, status_rank = u.rank, error_code = u.code, error_message = u.msg,
        reason = u.reason, claimed_by = NULL, lease_until = NULL,
        final_at = CASE WHEN u.rank >= 100 THEN now() ELSE o.final_at END,
        segments = coalesce(o.segments, u.segments), encoding = coalesce(o.encoding, u.encoding),
        updated_at = now()
    FROM u JOIN cur ON cur.id = u.id
    WHERE o.id = u.id AND o.status_rank < u.rank
    {_REPORTED}
){_DELIVERY_REPORTS}"""
# A retryable failure: back to 'claimed' by this worker (it keeps the message in memory).
MARK_RETRY: Final = """
UPDATE engine_outbound o
SET state = 'claimed', error_code = u.code, error_message = u.msg, updated_at = now(),
    lease_until = now() + make_interval(secs => $4)
FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, code, msg)
WHERE o.id = u.id AND o.state = 'sending'
"""
# ---- statuses from the carrier -------------------------------------------------------------
# Every callback of the batch arrives in `a`; per message the highest rank (the first of equals) is applied (`u`),
# statuses never moving backwards; `cur` locks the rows it will change as _LOCK_CURRENT does, noting which callback
# (`i`) changes each. The timeline (engine_message_event) records the applied ones through its trigger, and
# `ignored` records the others: callbacks that changed nothing (a lower or equal rank, arrived late, or about an
# attempt the carrier refused). $1: rows [id, provider status, status, rank, state, error code, sid, sender]
# (see _JSON_ROWS; numbered by their order).
APPLY_STATUSES: Final = f"""
WITH a AS (
    SELECT (e->>0)::bigint AS id, e->>1 AS pstatus, (e->>2)::smallint AS status, (e->>3)::smallint AS rank,
           e->>4 AS state, (e->>5)::int AS code, e->>6 AS sid, e->>7 AS sender, i
    FROM (SELECT e, i FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(e, i)
          LIMIT jsonb_array_length($1::jsonb)) AS r
), u AS (
    SELECT DISTINCT ON (a.id) a.* FROM a ORDER BY a.id, a.rank DESC, a.i
), cur AS MATERIALIZED (
    SELECT o.id, o.status AS old_status, u.i FROM engine_outbound o JOIN u ON u.id = o.id
    WHERE o.status_rank < u.rank
      AND (u.sid IS NULL OR o.retired_sid IS DISTINCT FROM u.sid)  -- a late word on an attempt the carrier refused
    ORDER BY o.id FOR UPDATE OF o
), ignored AS (
    INSERT INTO engine_message_event (message_id, state, status, provider_status, error_code, applied)
    SELECT o.id, o.state, o.status, a.pstatus, a.code, false
    FROM a JOIN engine_outbound o ON o.id = a.id
    WHERE NOT EXISTS (SELECT 1 FROM cur WHERE cur.i = a.i)
    ORDER BY a.i
), upd AS (
    UPDATE engine_outbound o
    SET provider_status = u.pstatus, status = u.status, status_rank = u.rank, state = u.state,
        error_code = coalesce(u.code, o.error_code),
        provider_message_id = coalesce(o.provider_message_id, u.sid),
        -- sent through a Messaging Service (its SID stands as the sender): the number Twilio chose
        sender = CASE WHEN u.sender IS NOT NULL AND o.sender ~ '^MG[0-9a-fA-F]{{32}}$' THEN u.sender
                      ELSE o.sender END,
        final_at = CASE WHEN u.rank >= 100 THEN now() ELSE o.final_at END,
        claimed_by = NULL, lease_until = NULL, updated_at = now()
    FROM u JOIN cur ON cur.id = u.id
    WHERE o.id = u.id AND o.status_rank < u.rank
      AND (u.sid IS NULL OR o.retired_sid IS DISTINCT FROM u.sid)  -- a late word on an attempt the carrier refused
    {_REPORTED}
){_DELIVERY_REPORTS}"""

# ---- reporting -------------------------------------------------------------------------------
# The same, for messages of one kind only (the demo's job: 'message', not the replies and confirmations).
COUNT_BY_STATE_OF_KIND: Final = """
SELECT state, count(*)::int AS n FROM engine_outbound WHERE app_id = $1 AND kind = $2 GROUP BY state
"""
COUNT_BY_STATE: Final = """
SELECT state, count(*)::int AS n FROM engine_outbound WHERE app_id = $1 GROUP BY state
"""

# ---- metrics -----------------------------------------------------------------------------------
QUEUE_DEPTH: Final = """
SELECT state, count(*)::int AS n FROM engine_outbound
WHERE state IN ('queued', 'claimed', 'sending', 'sent', 'unknown') GROUP BY state
"""
CALLBACK_BACKLOG: Final = "SELECT count(*)::int FROM engine_outbox WHERE state = 'pending'"
PING: Final = "SELECT 1"
