"""SQL of the inbound path (MO webhook, module chain), by name. See engine/store/inbound.py for their use."""

from __future__ import annotations

from typing import Final

# The webhook stores an MO before it answers; a retry (same MessageSid or idempotency token) stores nothing.
STORE_MO: Final = """
INSERT INTO engine_inbound (provider_id, message_sid, idempotency_token, phone, to_number, body, num_segments, params)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
ON CONFLICT DO NOTHING
RETURNING id
"""
# The oldest open MO of each phone, never one whose phone has an earlier MO still open (per-phone order).
CLAIM_MOS: Final = """
WITH picked AS (
    SELECT m.id FROM engine_inbound m
    WHERE m.state = 'pending'
      AND NOT EXISTS (SELECT 1 FROM engine_inbound e WHERE e.phone = m.phone AND e.id < m.id AND e.state <> 'done')
    ORDER BY m.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE engine_inbound m SET state = 'claimed', claimed_by = $1, lease_until = now() + make_interval(secs => $3)
WHERE m.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING m.id, m.provider_id, m.message_sid, m.phone, m.to_number, m.body, m.received_at, m.depth
"""
# MOs of a worker that died mid-chain go back (their effects were not committed: they run again, once).
RECOVER_MOS: Final = """
UPDATE engine_inbound SET state = 'pending', claimed_by = NULL, lease_until = NULL
WHERE state = 'claimed' AND lease_until < now()
"""
MO_DONE: Final = """
UPDATE engine_inbound SET state = 'done', claimed_by = NULL, lease_until = NULL, processed_at = now(),
    did_id = $2, app_id = $3, outcome = $4, possible_opt_out = $5
WHERE id = $1
"""
# The DID texted, its SMSC's apps (the SMSC's owner first) and whether its carrier answers STOP itself.
MO_DID: Final = """
SELECT d.id AS did_id, d.smsc_id, coalesce(p.carrier_handles_optout, false) AS carrier_handles_optout
FROM engine_did d
JOIN engine_smsc s ON s.id = d.smsc_id
LEFT JOIN engine_provider p ON p.id = s.provider_id
WHERE d.number = $1
"""
SMSC_APPS: Final = """
SELECT a.id, a.name, a.help_text, a.welcome_text, a.optout_text, a.optin_text, a.nomatch_text,
       a.session_idle_seconds, a.loop_max_replies, a.loop_window_seconds, a.loop_max_repeats, a.loop_cooldown_seconds
FROM engine_app a JOIN engine_smsc s ON s.id = $1
WHERE a.smsc_id = $1
ORDER BY a.id = s.app_id DESC, a.id
"""
# Per app of $2, as of $3: the phone's open session, whether they talked, whether it opted out, whether it texted
# before, a double opt-in awaiting its YES, the tag of the app's latest tagged MT to it, its loop-detection state.
PHONE_FACTS: Final = """
SELECT a.id AS app_id,
       (SELECT max(s.opened_at) FROM engine_session s
         WHERE s.app_id = a.id AND s.phone = $1 AND (s.expires_at IS NULL OR s.expires_at > $3)) AS session_opened,
       EXISTS (SELECT 1 FROM engine_outbound o WHERE o.recipient = $1 AND o.app_id = a.id) AS texted,
       EXISTS (SELECT 1 FROM engine_blacklist b WHERE b.app_id = a.id AND b.phone = $1) AS blacklisted,
       EXISTS (SELECT 1 FROM engine_contact c WHERE c.app_id = a.id AND c.phone = $1) AS contact,
       (SELECT p.tags FROM engine_pending_optin p WHERE p.app_id = a.id AND p.phone = $1 AND p.expires_at > $3)
           AS pending_tags,
       (SELECT o.tag FROM engine_outbound o WHERE o.recipient = $1 AND o.app_id = a.id AND o.tag IS NOT NULL
         ORDER BY o.created_at DESC LIMIT 1) AS last_tag,
       l.reply_times, l.last_body, l.last_mo_at, l.repeats, l.cooldown_until, l.optout_sent, l.help_sent
FROM unnest($2::bigint[]) AS a(id)
LEFT JOIN engine_loop_state l ON l.app_id = a.id AND l.phone = $1
"""
SMSC_KEYWORDS: Final = """
SELECT keyword, mode, app_id, auto_subscribe, auto_subscribe_tags, double_opt_in, start_session, auto_response
FROM engine_keyword WHERE smsc_id = $1 ORDER BY id
"""
# A session opened or extended by an MO lasts the app's idle time from now ($4).
TOUCH_SESSION: Final = """
INSERT INTO engine_session (app_id, phone, did_id, opened_at, expires_at)
VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + make_interval(secs => $5))
ON CONFLICT (app_id, phone) DO UPDATE
SET expires_at = CASE WHEN engine_session.expires_at IS NULL THEN NULL ELSE EXCLUDED.expires_at END,
    did_id = EXCLUDED.did_id
"""
SUBSCRIBE: Final = """
INSERT INTO engine_subscription (app_id, phone, tag, source)
SELECT $1, $2, t, $4 FROM unnest($3::text[]) AS t
ON CONFLICT (app_id, phone, tag) DO NOTHING
"""
AWAIT_CONFIRMATION: Final = """
INSERT INTO engine_pending_optin (app_id, phone, keyword, tags, expires_at)
VALUES ($1, $2, $3, $4::text[], $5::timestamptz + interval '24 hours')
ON CONFLICT (app_id, phone) DO UPDATE
SET keyword = EXCLUDED.keyword, tags = EXCLUDED.tags, expires_at = EXCLUDED.expires_at
"""
CLEAR_CONFIRMATION: Final = "DELETE FROM engine_pending_optin WHERE app_id = $1 AND phone = $2"
SAVE_LOOP_STATE: Final = """
INSERT INTO engine_loop_state (app_id, phone, reply_times, last_body, last_mo_at, repeats, cooldown_until,
                               optout_sent, help_sent)
VALUES ($1, $2, $3::float8[], $4, $5, $6, $7, $8, $9)
ON CONFLICT (app_id, phone) DO UPDATE
SET reply_times = EXCLUDED.reply_times, last_body = EXCLUDED.last_body, last_mo_at = EXCLUDED.last_mo_at,
    repeats = EXCLUDED.repeats, cooldown_until = EXCLUDED.cooldown_until, optout_sent = EXCLUDED.optout_sent,
    help_sent = EXCLUDED.help_sent
"""
BLACKLIST_KEYWORD: Final = """
INSERT INTO engine_blacklist (app_id, phone, reason)
SELECT a, $2, $3 FROM unnest($1::bigint[]) AS a
ON CONFLICT (app_id, phone) DO NOTHING
RETURNING app_id
"""
UNBLACKLIST_APPS: Final = """
DELETE FROM engine_blacklist WHERE app_id = ANY($1::bigint[]) AND phone = $2 RETURNING app_id
"""
CLOSE_PHONE_SESSIONS: Final = """
DELETE FROM engine_session WHERE app_id = ANY($1::bigint[]) AND phone = $2 RETURNING app_id
"""
RECORD_CONSENT: Final = """
INSERT INTO engine_consent_event (app_id, phone, action, source, keyword, did_id, message_sid)
SELECT a, $2, $3, $4, $5, $6, $7 FROM unnest($1::bigint[]) AS a
"""
ADD_CONTACT: Final = "INSERT INTO engine_contact (app_id, phone) VALUES ($1, $2) ON CONFLICT DO NOTHING"
# Replies and confirmations: queued like any message, from the DID the phone texted.
QUEUE_REPLIES: Final = """
INSERT INTO engine_outbound (app_id, recipient, body, kind, from_did, in_reply_to)
SELECT u.app_id, $1, u.body, u.kind, $2, $3
FROM unnest($4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY AS u(app_id, body, kind, i)
ORDER BY u.i
RETURNING id
"""
# Events for one phone, one row per app ($1 apps, $2 type, $3 payloads).
PHONE_EVENTS: Final = """
INSERT INTO engine_outbox (app_id, type, payload)
SELECT u.a, $2, u.p::jsonb FROM unnest($1::bigint[], $3::text[]) AS u(a, p)
"""
# The carrier refused a send because the recipient unsubscribed (Twilio 21610): blacklist the phone for the app
# (reason 'carrier'), record the opt-out, tell the app (phone_blacklisted) — one statement.
CARRIER_OPT_OUTS: Final = """
WITH u AS (
    SELECT DISTINCT app_id, phone FROM unnest($1::bigint[], $2::text[]) AS u(app_id, phone)
), added AS (
    INSERT INTO engine_blacklist (app_id, phone, reason) SELECT app_id, phone, 'carrier' FROM u
    ON CONFLICT (app_id, phone) DO NOTHING
    RETURNING app_id, phone
), recorded AS (
    INSERT INTO engine_consent_event (app_id, phone, action, source, keyword)
    SELECT app_id, phone, 'opt_out', 'carrier', '21610' FROM u
)
INSERT INTO engine_outbox (app_id, type, payload)
SELECT app_id, 'phone_blacklisted', jsonb_build_object('phone_number', phone) FROM added
"""
# The incoming_message event remembers its MO: the gateway's answer to it is a reply to that MO.
INCOMING_EVENT: Final = """
INSERT INTO engine_outbox (app_id, type, payload, inbound_id) VALUES ($1, 'incoming_message', $2::jsonb, $3)
"""
# The next gateway answer to handle, locked, with its MO and the app's loop-detection state and limits.
NEXT_ANSWER: Final = """
SELECT a.id, a.app_id, a.body, a.close_session, a.reprocess,
       m.id AS inbound_id, m.provider_id, m.message_sid, m.phone, m.to_number, m.did_id, m.depth,
       p.loop_max_replies, p.loop_window_seconds, p.loop_max_repeats, p.loop_cooldown_seconds,
       l.reply_times, l.last_body, l.last_mo_at, l.repeats, l.cooldown_until, l.optout_sent, l.help_sent
FROM engine_app_answer a
JOIN engine_inbound m ON m.id = a.inbound_id
JOIN engine_app p ON p.id = a.app_id
LEFT JOIN engine_loop_state l ON l.app_id = a.app_id AND l.phone = m.phone
WHERE a.state = 'pending'
ORDER BY a.id
LIMIT 1
FOR UPDATE OF a SKIP LOCKED
"""
ANSWER_DONE: Final = "UPDATE engine_app_answer SET state = 'done', processed_at = now() WHERE id = $1"
# A gateway's `reprocess`: a new MO from the same phone to the same DID, one level deeper.
REPROCESS_MO: Final = """
INSERT INTO engine_inbound (provider_id, message_sid, phone, to_number, body, params, depth)
VALUES ($1, $2, $3, $4, $5, '{}'::jsonb, $6)
ON CONFLICT DO NOTHING
"""
# `engine inbound review`: MOs that began with an ambiguous opt-out word followed by text ("Cancel my hold").
POSSIBLE_OPT_OUTS: Final = """
SELECT m.id, m.received_at, m.phone, m.body, a.name AS app, m.app_id
FROM engine_inbound m LEFT JOIN engine_app a ON a.id = m.app_id
WHERE m.possible_opt_out AND m.reviewed_at IS NULL AND ($1::bigint IS NULL OR m.app_id = $1)
ORDER BY m.id
LIMIT $2
"""
MARK_REVIEWED: Final = """
UPDATE engine_inbound SET reviewed_at = now()
WHERE id = ANY($1::bigint[]) AND possible_opt_out AND reviewed_at IS NULL
RETURNING id, phone, app_id, did_id, message_sid
"""
OPERATOR_OPT_OUTS: Final = """
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[]) AS u(app_id, phone, did_id, sid)
), added AS (
    INSERT INTO engine_blacklist (app_id, phone, reason) SELECT DISTINCT app_id, phone, 'operator' FROM u
    ON CONFLICT (app_id, phone) DO NOTHING
    RETURNING app_id, phone
), recorded AS (
    INSERT INTO engine_consent_event (app_id, phone, action, source, did_id, message_sid)
    SELECT app_id, phone, 'opt_out', 'operator', did_id, sid FROM u
)
INSERT INTO engine_outbox (app_id, type, payload)
SELECT app_id, 'phone_blacklisted', jsonb_build_object('phone_number', phone) FROM added
"""
# Nothing of the inbound path left to do: every MO handled, every gateway answer handled, every message final.
INBOUND_SETTLED: Final = """
SELECT NOT EXISTS (SELECT 1 FROM engine_inbound WHERE state <> 'done')
   AND NOT EXISTS (SELECT 1 FROM engine_app_answer WHERE state = 'pending')
   AND NOT EXISTS (SELECT 1 FROM engine_outbound WHERE state IN ('queued', 'claimed', 'sending', 'sent'))
"""
INBOUND_SUMMARY: Final = """
SELECT (SELECT count(*) FROM engine_inbound WHERE app_id = $1)::int AS mos,
       (SELECT count(*) FROM engine_inbound WHERE app_id = $1 AND outcome = 'opt_out')::int AS opt_outs,
       (SELECT count(*) FROM engine_inbound WHERE app_id = $1 AND outcome = 'opt_in')::int AS opt_ins,
       (SELECT count(*) FROM engine_inbound WHERE app_id = $1 AND outcome = 'help')::int AS help_answers,
       (SELECT count(*) FROM engine_inbound WHERE app_id = $1 AND outcome = 'routed')::int AS routed_to_app,
       (SELECT count(*) FROM engine_outbound WHERE app_id = $1 AND kind = 'reply')::int AS app_replies,
       (SELECT count(*) FROM engine_outbound WHERE app_id = $1 AND kind = 'compliance')::int AS confirmations
"""
