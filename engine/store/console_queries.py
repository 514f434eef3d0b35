"""SQL of the operator console's pages (:mod:`engine.store.console`).

Every statement is bounded and served by an index, so a page stays fast however long the history grows: open
messages through the partial index of open states, the last hour through the sending_at index, callbacks per app
through (app_id, state), conversations through (phone, id) and (recipient, app_id, created_at), the blacklist
through its phone and created_at indexes, DIDs' last minute through sending_at again.
"""

from __future__ import annotations

from typing import Final

# ---- overview ---------------------------------------------------------------------------------
OPEN_BY_APP: Final = """
SELECT app_id, state, count(*)::int AS n FROM engine_outbound
WHERE state IN ('queued', 'claimed', 'sending', 'sent', 'unknown')
GROUP BY app_id, state
"""
# Messages handed to the carrier in ($1, $2], by app, minute and where they are now: the overview reads the last
# hour as a few such slices at once (each a range of the sending_at index). (date_trunc on the timestamp:
# extract(epoch) is numeric arithmetic, several times slower per row.)
SENT_BETWEEN: Final = """
SELECT app_id, date_trunc('minute', sending_at) AS minute, state, count(*)::int AS n
FROM engine_outbound
WHERE sending_at > $1 AND sending_at <= $2
GROUP BY 1, 2, 3
"""
CALLBACKS_BY_APP: Final = """
SELECT a.id, a.name,
       (SELECT count(*) FROM engine_outbox b WHERE b.app_id = a.id AND b.state = 'pending')::int AS pending,
       (SELECT count(*) FROM engine_outbox b WHERE b.app_id = a.id AND b.state = 'dead')::int AS dead
FROM engine_app a ORDER BY a.name
"""
NOW: Final = "SELECT now()"

# ---- inbound: conversations, the consent record, the blacklist ---------------------------------
# The latest MOs (before id $1 when paging back), newest first; the page groups them by phone.
RECENT_MOS: Final = """
SELECT m.id, m.phone, m.to_number, m.body, m.received_at, m.outcome, a.name AS app
FROM engine_inbound m LEFT JOIN engine_app a ON a.id = m.app_id
WHERE $1::bigint IS NULL OR m.id < $1
ORDER BY m.id DESC LIMIT $2
"""
PHONE_MOS: Final = """
SELECT m.id, m.to_number, m.body, m.received_at AS at, m.outcome, a.name AS app
FROM engine_inbound m LEFT JOIN engine_app a ON a.id = m.app_id
WHERE m.phone = $1 AND ($2::timestamptz IS NULL OR m.received_at < $2)
ORDER BY m.id DESC LIMIT $3
"""
PHONE_MTS: Final = """
SELECT o.id, o.sender, o.body, o.created_at AS at, o.state, o.kind, o.reason, a.name AS app
FROM engine_outbound o JOIN engine_app a ON a.id = o.app_id
WHERE o.recipient = $1 AND ($2::timestamptz IS NULL OR o.created_at < $2)
ORDER BY o.created_at DESC LIMIT $3
"""
# The opt-out record, newest first: everyone's (by id, before id $1) or one phone's ($1, through its index).
CONSENT_EVENTS: Final = """
SELECT e.id, e.phone, a.name AS app, e.action, e.source, e.keyword, e.operator, e.note, e.created_at
FROM engine_consent_event e JOIN engine_app a ON a.id = e.app_id
WHERE $1::bigint IS NULL OR e.id < $1
ORDER BY e.id DESC LIMIT $2
"""
PHONE_CONSENT_EVENTS: Final = """
SELECT e.id, e.phone, a.name AS app, e.action, e.source, e.keyword, e.operator, e.note, e.created_at
FROM engine_consent_event e JOIN engine_app a ON a.id = e.app_id
WHERE e.phone = $1 AND ($2::bigint IS NULL OR e.id < $2)
ORDER BY e.id DESC LIMIT $3
"""
# Phones starting with $1 ($2 = $1 followed by ':' , the character after '9'), in order, after phone $3.
BLACKLIST_SEARCH: Final = """
SELECT b.phone, a.name AS app, b.reason, b.note, b.created_at
FROM engine_blacklist b JOIN engine_app a ON a.id = b.app_id
WHERE b.phone ~>=~ $1 AND b.phone ~<~ $2 AND ($3::text IS NULL OR b.phone ~>~ $3)
ORDER BY b.phone, a.name LIMIT $4
"""
# The newest entries first, before ($1 created_at, $2 app_id, $3 phone) when paging.
BLACKLIST_RECENT: Final = """
SELECT b.phone, a.name AS app, b.reason, b.note, b.created_at, b.app_id
FROM engine_blacklist b JOIN engine_app a ON a.id = b.app_id
WHERE $1::timestamptz IS NULL OR (b.created_at, b.app_id, b.phone) < ($1, $2::bigint, $3::text)
ORDER BY b.created_at DESC, b.app_id DESC, b.phone DESC LIMIT $4
"""
# An operator's change: the blacklist row (with the note), the consent record (who, why), the app's callback.
OPERATOR_BLACKLIST: Final = """
WITH added AS (
    INSERT INTO engine_blacklist (app_id, phone, reason, note) VALUES ($1, $2, 'operator', $4)
    ON CONFLICT (app_id, phone) DO NOTHING
    RETURNING app_id, phone
), recorded AS (
    INSERT INTO engine_consent_event (app_id, phone, action, source, operator, note)
    SELECT app_id, phone, 'opt_out', 'operator', $3, $4 FROM added
)
INSERT INTO engine_outbox (app_id, type, payload)
SELECT app_id, 'phone_blacklisted', jsonb_build_object('phone_number', phone) FROM added
RETURNING app_id
"""
OPERATOR_UNBLACKLIST: Final = """
WITH removed AS (
    DELETE FROM engine_blacklist WHERE app_id = $1 AND phone = $2 RETURNING app_id, phone
), recorded AS (
    INSERT INTO engine_consent_event (app_id, phone, action, source, operator, note)
    SELECT app_id, phone, 'opt_in', 'operator', $3, $4 FROM removed
)
INSERT INTO engine_outbox (app_id, type, payload)
SELECT app_id, 'phone_unblacklisted', jsonb_build_object('phone_number', phone) FROM removed
RETURNING app_id
"""

# ---- apps ---------------------------------------------------------------------------------------
APP_DETAIL: Final = """
SELECT a.id, a.name, a.gateway_url, a.split_mode, a.smart_encoding, a.help_text, a.welcome_text, a.optout_text,
       a.optin_text, a.nomatch_text, a.flood_limit, extract(epoch FROM a.flood_period)::float8 AS flood_seconds,
       extract(epoch FROM a.dedup_window)::float8 AS dedup_seconds, a.callback_concurrency,
       a.session_idle_seconds, a.loop_max_replies, a.loop_window_seconds, a.loop_max_repeats,
       a.loop_cooldown_seconds, extract(epoch FROM a.valid_for)::float8 AS valid_for_seconds,
       a.retention::text AS retention, a.quiet_hours,
       to_char(a.quiet_start, 'HH24:MI') || '-' || to_char(a.quiet_end, 'HH24:MI') AS quiet_window,
       a.smsc_id, s.name AS smsc, s.limit_per_min AS smsc_limit_per_min,
       s.app_id IS NULL AS shared_smsc, a.api_key_hash IS NOT NULL AS has_key
FROM engine_app a LEFT JOIN engine_smsc s ON s.id = a.smsc_id
WHERE a.name = $1
"""
APP_KEYWORDS: Final = """
SELECT keyword, mode, auto_subscribe, auto_subscribe_tags, double_opt_in, start_session, auto_response
FROM engine_keyword WHERE app_id = $1 ORDER BY upper(keyword) LIMIT 500
"""
# Dead-lettered callbacks of the app, newest first, before outbox id $2 when paging.
DEAD_LETTERS: Final = """
SELECT id, event_id::text AS event_id, type, attempts, last_error, created_at
FROM engine_outbox WHERE app_id = $1 AND state = 'dead' AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3
"""
# One more delivery attempt now for a dead-lettered callback (its age makes it dead again if that one fails).
RETRY_DEAD: Final = """
UPDATE engine_outbox SET state = 'pending', next_attempt_at = now(), claimed_by = NULL, lease_until = NULL
WHERE app_id = $1 AND event_id = $2::uuid AND state = 'dead'
RETURNING id
"""
WAKE_OUTBOX: Final = "SELECT pg_notify('engine_outbox', '')"

# ---- carrier accounts and numbers ---------------------------------------------------------------
SMSCS: Final = """
SELECT s.id, s.name, s.limit_per_min, s.app_id IS NULL AS shared,
       array(SELECT a.name FROM engine_app a WHERE a.smsc_id = s.id ORDER BY a.name) AS apps,
       (SELECT count(*) FROM engine_did d WHERE d.smsc_id = s.id)::int AS dids,
       p.id AS provider_id, p.kind, p.account_sid, p.auth_token, p.messaging_service_sid, p.base_url,
       p.single_sms, p.max_per_second, p.carrier_handles_optout
FROM engine_smsc s LEFT JOIN engine_provider p ON p.id = s.provider_id
ORDER BY s.name
"""
SMSC_BY_NAME: Final = """
SELECT s.id, s.name, p.id AS provider_id, p.kind, p.account_sid, p.auth_token, p.messaging_service_sid, p.base_url
FROM engine_smsc s LEFT JOIN engine_provider p ON p.id = s.provider_id
WHERE s.name = $1
"""
# A page of the SMSC's DIDs in number order (after number $2).
SMSC_DID_PAGE: Final = """
SELECT id, number, limit_per_min, burst, enabled FROM engine_did
WHERE smsc_id = $1 AND ($2::text IS NULL OR number > $2)
ORDER BY number LIMIT $3
"""
# Segments each DID handed to the carrier in the last 60 s (what its per-minute limit counts).
DID_LAST_MINUTE: Final = """
SELECT did_id, sum(coalesce(segments, 1))::int AS segments
FROM engine_outbound
WHERE sending_at > now() - interval '60 seconds' AND did_id = ANY($1::bigint[])
GROUP BY did_id
"""
