"""SQL of the Carousel-compatible HTTP API, by name (see engine/store/carousel.py for their use).

Values always travel as parameters; lists travel as arrays and are UNNESTed.
"""

from __future__ import annotations

from typing import Final

# ---- authentication --------------------------------------------------------------------------
_API_APP: Final = """
SELECT a.id, a.name, a.smsc_id, a.split_mode, a.smart_encoding, a.flood_limit,
       extract(epoch FROM a.flood_period)::float8 AS flood_seconds,
       p.id AS provider_id, p.kind, p.account_sid, p.auth_token, p.messaging_service_sid, p.base_url,
       p.single_sms
FROM engine_app a
LEFT JOIN engine_smsc s ON s.id = a.smsc_id
LEFT JOIN engine_provider p ON p.id = s.provider_id
"""
APP_BY_KEY_HASH: Final = _API_APP + "WHERE a.api_key_hash = $1\n"
# The same for an operator's command naming the app (`engine send --app NAME`).
APP_BY_NAME: Final = _API_APP + "WHERE a.name = $1\n"

# ---- sending ---------------------------------------------------------------------------------
BLACKLISTED_AMONG: Final = "SELECT phone FROM engine_blacklist WHERE app_id = $1 AND phone = ANY($2::text[])"
# Serialises flood checks per (app, recipient) across concurrent calls; sorted, so no deadlocks.
LOCK_RECIPIENTS: Final = """
SELECT pg_advisory_xact_lock(hashtextextended('engine_flood:' || $1::bigint::text || ':' || r, 0))
FROM (SELECT DISTINCT r FROM unnest($2::text[]) AS u(r) ORDER BY r) AS s
"""
# Messages towards the flood limit, counted as admission counts them (queries.ADMISSION_FACTS): not those
# refused for blacklist or flood, nor the engine's own STOP/HELP answers.
RECENT_COUNTS: Final = """
SELECT recipient, count(*)::int AS n
FROM engine_outbound
WHERE app_id = $1 AND recipient = ANY($2::text[]) AND created_at > now() - make_interval(secs => $3)
  AND kind <> 'compliance'
  AND reason IS DISTINCT FROM 'blacklisted' AND reason IS DISTINCT FROM 'flood_limit'
GROUP BY recipient
"""
# Same columns as the other submit doors (with the notification's type, category and expiry, $7-$9, and the job,
# $10); ids come from one sequence in row order (ORDER BY i).
INSERT_MESSAGES: Final = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, send_at, due_at, to_subscribers, type, category, expires_at,
                             job_id)
SELECT $1, u.r, u.b, $4::text, $5::timestamptz, coalesce($5::timestamptz, now()), $6::bool,
       $7::text, $8::text, $9::timestamptz, $10::bigint
FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(r, b, i)
ORDER BY u.i
RETURNING id
"""
# Parts 2..n of a message split for a single-SMS carrier point at part 1 ($1 part ids, $2 their first part's id).
LINK_PARTS: Final = """
UPDATE engine_outbound o SET part_of = u.head FROM unnest($1::bigint[], $2::bigint[]) AS u(id, head) WHERE o.id = u.id
"""
# A session opened because a reply is expected lasts $3 seconds (extended, never shortened).
OPEN_SESSIONS: Final = """
INSERT INTO engine_session (app_id, phone, expires_at)
SELECT $1, p, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS p
ON CONFLICT (app_id, phone) DO UPDATE
SET expires_at = CASE WHEN engine_session.expires_at IS NULL THEN NULL
                      ELSE greatest(engine_session.expires_at, EXCLUDED.expires_at) END
"""
# Only still-queued (unclaimed) messages: a worker's claim and a cancel cannot both win the row. $3: messages
# sent to subscribers by tag (cancel_subscription_messages) or the others (cancel_messages).
CANCEL_QUEUED: Final = """
UPDATE engine_outbound
SET state = 'canceled', status = 2, status_rank = 100, final_at = now(), updated_at = now()
WHERE app_id = $1 AND id = ANY($2::bigint[]) AND state = 'queued' AND to_subscribers = $3
RETURNING id
"""
STATUSES_OF: Final = "SELECT id, status FROM engine_outbound WHERE app_id = $1 AND id = ANY($2::bigint[])"

# ---- DIDs ------------------------------------------------------------------------------------
# (A Messaging Service row is not a DID of the app: Twilio picks the sender from the service's pool.)
SMSC_DIDS: Final = """
SELECT number FROM engine_did WHERE smsc_id = $1 AND sender_type <> 'messaging_service' ORDER BY number
"""
DID_SMSC: Final = "SELECT smsc_id FROM engine_did WHERE number = $1"
INSERT_DID: Final = """
INSERT INTO engine_did (smsc_id, number, sender_type, limit_per_min, burst) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (number) DO NOTHING
RETURNING id
"""
LOCK_DID: Final = "SELECT id FROM engine_did WHERE smsc_id = $1 AND number = $2 FOR UPDATE"
DELETE_DID: Final = "DELETE FROM engine_did WHERE id = $1"

# ---- sessions, blacklist (their callback events: engine.store.outbox) --------------------------
CLOSE_SESSIONS: Final = "DELETE FROM engine_session WHERE app_id = $1 AND phone = ANY($2::text[]) RETURNING phone"
BLACKLIST_ADD: Final = """
INSERT INTO engine_blacklist (app_id, phone, reason)
SELECT $1, p, 'api' FROM unnest($2::text[]) AS p
ON CONFLICT (app_id, phone) DO NOTHING
RETURNING phone
"""
# The opt-out record keeps every change made through the API too (unblacklisting deletes no history).
RECORD_API_CONSENT: Final = """
INSERT INTO engine_consent_event (app_id, phone, action, source) SELECT $1, p, $2, 'api' FROM unnest($3::text[]) AS p
"""
BLACKLIST_REMOVE: Final = "DELETE FROM engine_blacklist WHERE app_id = $1 AND phone = ANY($2::text[]) RETURNING phone"

# ---- keywords ----------------------------------------------------------------------------------
# One association at a time per SMSC, so prefix checks cannot race each other.
LOCK_KEYWORD_SPACE: Final = "SELECT pg_advisory_xact_lock(hashtextextended('engine_keyword:' || $1::bigint::text, 0))"
# Keywords of the SMSC that equal $2, or that overlap it as a prefix in starts-with mode ($3 = new mode).
KEYWORD_OVERLAPS: Final = """
SELECT id, app_id, keyword, mode
FROM engine_keyword
WHERE smsc_id = $1 AND (
    upper(keyword) = upper($2)
    OR (mode = 1 AND starts_with(upper($2), upper(keyword)))
    OR ($3::smallint = 1 AND starts_with(upper(keyword), upper($2)))
)
ORDER BY upper(keyword)
"""
INSERT_KEYWORD: Final = """
INSERT INTO engine_keyword (smsc_id, app_id, keyword, mode, auto_subscribe, auto_subscribe_tags)
VALUES ($1, $2, $3, $4, $5, $6::text[])
"""
UPDATE_KEYWORD: Final = """
UPDATE engine_keyword SET keyword = $2, mode = $3, auto_subscribe = $4, auto_subscribe_tags = $5::text[]
WHERE id = $1
"""
FIND_KEYWORD: Final = """
SELECT id, app_id FROM engine_keyword
WHERE upper(keyword) = upper($2) AND (app_id = $1 OR smsc_id = $3)
ORDER BY (app_id = $1) DESC
LIMIT 1
"""
DELETE_KEYWORD: Final = "DELETE FROM engine_keyword WHERE id = $1"

# ---- subscriptions and web opt-in ------------------------------------------------------------------
SUBSCRIBERS: Final = """
SELECT DISTINCT phone FROM engine_subscription WHERE app_id = $1 AND tag = ANY($2::text[]) ORDER BY phone LIMIT $3
"""
SAVE_OPTIN_CODE: Final = """
INSERT INTO engine_optin_code (app_id, phone, code_hash, tags, tries, expires_at)
VALUES ($1, $2, $3, $4::text[], 0, now() + make_interval(secs => $5))
ON CONFLICT (app_id, phone) DO UPDATE
SET code_hash = EXCLUDED.code_hash, tags = EXCLUDED.tags, tries = 0, expires_at = EXCLUDED.expires_at
"""
OPTIN_CODE: Final = """
SELECT code_hash, tags, tries, expires_at > now() AS valid FROM engine_optin_code
WHERE app_id = $1 AND phone = $2 FOR UPDATE
"""
WRONG_OPTIN_CODE: Final = """
UPDATE engine_optin_code SET tries = tries + 1 WHERE app_id = $1 AND phone = $2 RETURNING tries
"""
DROP_OPTIN_CODE: Final = "DELETE FROM engine_optin_code WHERE app_id = $1 AND phone = $2"
WEB_SUBSCRIBE: Final = """
INSERT INTO engine_subscription (app_id, phone, tag, source)
SELECT $1, $2, t, 'web' FROM unnest($3::text[]) AS t
ON CONFLICT (app_id, phone, tag) DO NOTHING
"""
WEB_CONSENT: Final = """
INSERT INTO engine_consent_event (app_id, phone, action, source) VALUES ($1, $2, 'opt_in', 'web')
"""
