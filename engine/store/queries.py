"""SQL of the message queue, administration and metrics, by name. Nothing outside engine/store builds SQL.

Its siblings hold the rest, by aggregate: `carousel_queries` (the HTTP API), `lease_queries` (workers and
DID leases), `outbox_queries` (callback events), `inbound_queries` (MOs, consent, sessions, loops). Values
always travel as parameters; batches travel as arrays and are UNNESTed.
"""

from __future__ import annotations

from typing import Final

# ---- administration ------------------------------------------------------------------------
CREATE_APP: Final = """
INSERT INTO engine_app (name, api_key_hash, callback_secret, gateway_url)
VALUES ($1, $2, $3, $4) RETURNING id
"""
CREATE_SMSC: Final = "INSERT INTO engine_smsc (name, app_id) VALUES ($1, $2) RETURNING id"
SET_APP_SMSC: Final = "UPDATE engine_app SET smsc_id = $2 WHERE id = $1"
# A shared SMSC (no owner app) with an optional cap in segments per minute for the whole pool.
CREATE_SHARED_SMSC: Final = "INSERT INTO engine_smsc (name, limit_per_min) VALUES ($1, $2) RETURNING id"
SMSC_BY_NAME: Final = "SELECT id FROM engine_smsc WHERE name = $1"
LIST_SMSCS: Final = """
SELECT s.id, s.name, s.limit_per_min, o.name AS owner,
       (SELECT count(*)::int FROM engine_did d WHERE d.smsc_id = s.id) AS dids,
       (SELECT coalesce(array_agg(a.name ORDER BY a.name), '{}') FROM engine_app a WHERE a.smsc_id = s.id) AS apps
FROM engine_smsc s LEFT JOIN engine_app o ON o.id = s.app_id
ORDER BY s.name
"""
# An app moving to another SMSC takes its keywords along (unique per SMSC: a clash fails the move).
MOVE_APP_KEYWORDS: Final = "UPDATE engine_keyword SET smsc_id = $2 WHERE app_id = $1"
APP_BY_NAME: Final = """
SELECT a.id, a.name, a.gateway_url, a.split_mode, a.smart_encoding, a.smsc_id, a.callback_secret,
       extract(epoch FROM a.dedup_window)::float8 AS dedup_seconds
FROM engine_app a WHERE a.name = $1
"""
LIST_APPS: Final = """
SELECT a.id, a.name, a.gateway_url, a.split_mode, a.smart_encoding,
       (SELECT count(*) FROM engine_did d WHERE d.smsc_id = a.smsc_id) AS dids,
       (SELECT p.kind FROM engine_smsc s JOIN engine_provider p ON p.id = s.provider_id
         WHERE s.id = a.smsc_id) AS provider
FROM engine_app a ORDER BY a.id
"""
DELETE_APP: Final = "DELETE FROM engine_app WHERE name = $1"
SET_APP_DEDUP_WINDOW: Final = "UPDATE engine_app SET dedup_window = make_interval(secs => $2) WHERE id = $1"
CREATE_PROVIDER: Final = """
INSERT INTO engine_provider (app_id, kind, account_sid, auth_token, messaging_service_sid, base_url, single_sms,
                             max_per_second, carrier_handles_optout)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
"""
# The carrier account an application sends through (via its SMSC), for `engine provider test`.
APP_PROVIDER: Final = """
SELECT p.id, p.kind, p.account_sid, p.auth_token, p.messaging_service_sid, p.base_url, p.single_sms
FROM engine_smsc s JOIN engine_provider p ON p.id = s.provider_id
WHERE s.id = $1
"""
# `engine app set`: one statement per setting, all run in one transaction ($1 = app id).
APP_SETTERS: Final[dict[str, str]] = {
    "gateway_url": "UPDATE engine_app SET gateway_url = $2 WHERE id = $1",
    "help_text": "UPDATE engine_app SET help_text = $2 WHERE id = $1",
    "welcome_text": "UPDATE engine_app SET welcome_text = $2 WHERE id = $1",
    "optout_text": "UPDATE engine_app SET optout_text = $2 WHERE id = $1",
    "optin_text": "UPDATE engine_app SET optin_text = $2 WHERE id = $1",
    "nomatch_text": "UPDATE engine_app SET nomatch_text = $2 WHERE id = $1",
    "split_mode": "UPDATE engine_app SET split_mode = $2 WHERE id = $1",
    "smart_encoding": "UPDATE engine_app SET smart_encoding = $2 WHERE id = $1",
    "callback_concurrency": "UPDATE engine_app SET callback_concurrency = $2 WHERE id = $1",
    "session_idle_seconds": "UPDATE engine_app SET session_idle_seconds = $2 WHERE id = $1",
    "loop_max_replies": "UPDATE engine_app SET loop_max_replies = $2 WHERE id = $1",
    "loop_window_seconds": "UPDATE engine_app SET loop_window_seconds = $2 WHERE id = $1",
    "loop_max_repeats": "UPDATE engine_app SET loop_max_repeats = $2 WHERE id = $1",
    "loop_cooldown_seconds": "UPDATE engine_app SET loop_cooldown_seconds = $2 WHERE id = $1",
    "smsc_limit_per_min": (
        "UPDATE engine_smsc s SET limit_per_min = $2 FROM engine_app a WHERE a.id = $1 AND s.id = a.smsc_id"
    ),
}
SET_APP_FLOOD_LIMIT: Final = """
UPDATE engine_app SET flood_limit = $2, flood_period = make_interval(secs => $3) WHERE id = $1
"""
# Everything `engine app status` shows about an application's settings.
APP_SETTINGS: Final = """
SELECT a.id, a.name, a.gateway_url, a.split_mode, a.smart_encoding, a.help_text, a.welcome_text, a.optout_text,
       a.optin_text, a.nomatch_text, a.flood_limit, extract(epoch FROM a.flood_period)::float8 AS flood_seconds,
       extract(epoch FROM a.dedup_window)::float8 AS dedup_seconds, a.callback_concurrency
FROM engine_app a WHERE a.name = $1
"""
SET_SMSC_PROVIDER: Final = "UPDATE engine_smsc SET provider_id = $2 WHERE id = $1"
ADD_DIDS: Final = """
INSERT INTO engine_did (smsc_id, number, limit_per_min, burst)
SELECT $1, n, $3, $4 FROM unnest($2::text[]) AS n
ON CONFLICT (number) DO UPDATE SET limit_per_min = EXCLUDED.limit_per_min, burst = EXCLUDED.burst,
    enabled = true
WHERE engine_did.smsc_id = EXCLUDED.smsc_id
"""
DIDS_OWNED_ELSEWHERE: Final = "SELECT number FROM engine_did WHERE number = ANY($1::text[]) AND smsc_id <> $2"
LIST_DIDS: Final = """
SELECT number, limit_per_min, burst, enabled FROM engine_did WHERE smsc_id = $1 ORDER BY number
"""
REMOVE_DID: Final = "DELETE FROM engine_did WHERE smsc_id = $1 AND number = $2 RETURNING id"

# ---- topology the worker paces -------------------------------------------------------------
LOAD_DIDS: Final = """
SELECT id, smsc_id, number, limit_per_min, burst FROM engine_did WHERE enabled ORDER BY id
"""
# What admission applies per app (single_sms comes from the carrier account of the app's SMSC).
LOAD_APPS: Final = """
SELECT a.id, a.name, a.smsc_id, a.split_mode, a.smart_encoding, a.flood_limit,
       extract(epoch FROM a.flood_period)::float8 AS flood_seconds, coalesce(p.single_sms, false) AS single_sms
FROM engine_app a
LEFT JOIN engine_smsc s ON s.id = a.smsc_id
LEFT JOIN engine_provider p ON p.id = s.provider_id
"""
LOAD_PROVIDERS: Final = """
SELECT s.id AS smsc_id, p.id AS provider_id, p.kind, p.account_sid, p.auth_token,
       p.messaging_service_sid, p.base_url
FROM engine_smsc s JOIN engine_provider p ON p.id = s.provider_id
"""
# Limits above the DID: per SMSC (segments/minute) and per carrier account (segments/second).
LOAD_LIMITS: Final = """
SELECT s.id AS smsc_id, s.limit_per_min, p.kind, p.account_sid, coalesce(p.base_url, '') AS base_url,
       p.max_per_second
FROM engine_smsc s LEFT JOIN engine_provider p ON p.id = s.provider_id
"""
PROVIDER_TOKEN: Final = "SELECT kind, auth_token FROM engine_provider WHERE id = $1"
RECENT_SENDS: Final = """
SELECT did_id, extract(epoch FROM sending_at)::float8 AS at, coalesce(segments, 1)::int AS segments
FROM engine_outbound
WHERE sending_at > now() - make_interval(secs => $1) AND did_id = ANY($2::bigint[])
ORDER BY sending_at
"""

# ---- submit ----------------------------------------------------------------------------------
SUBMIT_MANY: Final = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at)
SELECT $1, r, b, t, s, coalesce(s, now())
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(r, b, t, s)
RETURNING id
"""

# ---- the claim / send cycle ----------------------------------------------------------------
CLAIM: Final = """
WITH picked AS (
    SELECT o.id FROM engine_outbound o
    WHERE o.state = 'queued' AND o.due_at <= now() AND o.app_id = ANY($4::bigint[])
      -- a conversation pinned to a DID another worker holds is that worker's to send
      AND (o.tag IS NULL OR NOT EXISTS (
            SELECT 1 FROM engine_tag_did t JOIN engine_did_lease l ON l.did_id = t.did_id
            WHERE t.app_id = o.app_id AND t.recipient = o.recipient AND t.tag = o.tag
              AND l.worker_id <> $1 AND l.lease_until > now()))
      -- so is a reply that must go out from the DID the phone texted
      AND (o.from_did IS NULL OR NOT EXISTS (
            SELECT 1 FROM engine_did_lease l
            WHERE l.did_id = o.from_did AND l.worker_id <> $1 AND l.lease_until > now()))
    ORDER BY o.due_at, o.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE engine_outbound o
SET state = 'claimed', claimed_by = $1, lease_until = now() + make_interval(secs => $3), updated_at = now()
-- By primary key: a join with `picked` let the generic plan hash-join it against a scan of the whole table.
WHERE o.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING o.id, o.app_id, o.recipient, o.body, o.tag, o.attempts, o.defers, o.kind, o.part_of, o.from_did
"""
NEXT_DUE: Final = """
SELECT extract(epoch FROM (min(due_at) - now()))::float8 FROM engine_outbound WHERE state = 'queued'
"""
# Admission's one batched lookup per claim. Per claimed id ($1), in order (i): is the phone blacklisted for the
# app; how many earlier messages went to it within $3 seconds (the app's flood period; 0 = not checked), leaving
# out those refused for blacklist or flood and the engine's own STOP/HELP answers (the HTTP door counts the
# same, see carousel_queries.RECENT_COUNTS); and does an earlier live message of the app to the phone, within
# its duplicate window, hold the body $2 (the first part as it will be sent; NULL = not checked). A resend
# (resent_from set: a person asked for it) is never a duplicate; every other rule applies to it.
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
             AND p.body = c.head AND p.state NOT IN ('suppressed', 'canceled', 'failed', 'undelivered')
       ) AS duplicate
FROM unnest($1::bigint[], $2::text[], $3::float8[]) WITH ORDINALITY AS c(id, head, flood, i)
JOIN engine_outbound m ON m.id = c.id
JOIN engine_app a ON a.id = m.app_id
ORDER BY c.i
"""
# A claimed message for a single-SMS carrier becomes its `(i/n) ` parts: the row keeps part 1 ($2, the caller's
# id still tracks it), parts 2..n are new rows ($3 owner id, $4 body, in order) linked by part_of, queued now.
# Engine code only (compliance messages may be split too: the caller sets engine.compliance).
SPLIT_INTO_PARTS: Final = """
WITH head AS (
    UPDATE engine_outbound o SET body = u.head, updated_at = now()
    FROM unnest($1::bigint[], $2::text[]) AS u(id, head)
    WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $5
    RETURNING o.id, o.app_id, o.recipient, o.tag, o.send_at, o.kind, o.created_at
)
INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at, kind, part_of, created_at)
SELECT h.app_id, h.recipient, p.body, h.tag, h.send_at, now(), h.kind, h.id, h.created_at
FROM unnest($3::bigint[], $4::text[]) WITH ORDINALITY AS p(owner, body, i)
JOIN head h ON h.id = p.owner
ORDER BY p.i
RETURNING id
"""
# Of our claimed ids $1, those whose phone is blacklisted for the app (MARK_SENDING left them unmarked).
BLACKLISTED_CLAIMS: Final = """
SELECT o.id FROM engine_outbound o
WHERE o.id = ANY($1::bigint[]) AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $2
  AND o.kind <> 'compliance'
  AND EXISTS (SELECT 1 FROM engine_blacklist b WHERE b.app_id = o.app_id AND b.phone = o.recipient)
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
# Returns the ids it marked as ONE array (decoded in C), not a row per message.
MARK_SENDING: Final = """
WITH marked AS (
    UPDATE engine_outbound o
    SET state = 'sending', did_id = u.did, sender = u.sender, segments = u.segments, encoding = u.encoding,
        attempts = o.attempts + 1, sending_at = now(), lease_until = now() + make_interval(secs => $7),
        sent_by = $6, updated_at = now()
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::smallint[], $5::text[])
         AS u(id, did, sender, segments, encoding)
    -- "claimed by us", written so that no index on state can serve it: the rows are found by primary key. With
    -- `o.state = 'claimed'` the planner could (and under load did) drive this from a partial index on state,
    -- whose 'claimed' range keeps a dead entry for every message claimed since the last vacuum (bitmap scans
    -- never mark them dead): each batch then cost O(messages sent lately) and Postgres CPU per message rose 8x.
    WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $6
      -- The last word of the blacklist: a phone that opted out while its message waited in memory gets nothing.
      AND (o.kind = 'compliance'
           OR NOT EXISTS (SELECT 1 FROM engine_blacklist b WHERE b.app_id = o.app_id AND b.phone = o.recipient))
    RETURNING o.id
)
SELECT coalesce(array_agg(id), '{}'::bigint[]) FROM marked
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
MARK_ACCEPTED: Final = f"""
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, sid, pstatus)
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
    WHERE o.id = u.id
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
# The housekeeping statements below lock their rows in id order and skip rows locked right now (a
# status write in progress): the status statements also lock in id order, so the two never deadlock,
# and a skipped row is simply seen again on the next round.
HEARTBEAT: Final = """
UPDATE engine_outbound o SET lease_until = now() + make_interval(secs => $2)
FROM (SELECT id FROM engine_outbound WHERE claimed_by = $1 AND state IN ('claimed', 'sending')
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

# ---- statuses from the carrier -------------------------------------------------------------
# Every callback of the batch arrives in `a`; per message the highest rank (the first of equals) is applied (`u`),
# statuses never moving backwards; `cur` locks the rows it will change as _LOCK_CURRENT does, noting which callback
# (`i`) changes each. The timeline (engine_message_event) records the applied ones through its trigger, and
# `ignored` records the others: callbacks that changed nothing (a lower or equal rank, arrived late).
APPLY_STATUSES: Final = f"""
WITH a AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::smallint[], $5::text[], $6::int[],
                         $7::text[]) WITH ORDINALITY
         AS a(id, pstatus, status, rank, state, code, sid, i)
), u AS (
    SELECT DISTINCT ON (a.id) a.* FROM a ORDER BY a.id, a.rank DESC, a.i
), cur AS MATERIALIZED (
    SELECT o.id, o.status AS old_status, u.i FROM engine_outbound o JOIN u ON u.id = o.id
    WHERE o.status_rank < u.rank
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
        final_at = CASE WHEN u.rank >= 100 THEN now() ELSE o.final_at END,
        claimed_by = NULL, lease_until = NULL, updated_at = now()
    FROM u JOIN cur ON cur.id = u.id
    WHERE o.id = u.id AND o.status_rank < u.rank
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
