"""Named SQL for sender types, 10DLC brands and campaigns, Messaging Service senders and carrier feedback."""

from __future__ import annotations

from typing import Final

# ---- brands and campaigns --------------------------------------------------------------------
CREATE_BRAND: Final = """
INSERT INTO engine_brand (name, tier, daily_cap, reserve) VALUES ($1, $2, $3, $4) RETURNING id
"""
BRAND_BY_NAME: Final = "SELECT id, name, tier, daily_cap, reserve FROM engine_brand WHERE name = $1"
UPDATE_BRAND: Final = "UPDATE engine_brand SET tier = $2, daily_cap = $3, reserve = $4 WHERE id = $1"
# Brands with what they sent since $1 (the start of the carrier day): every segment of their campaigns' DIDs.
LIST_BRANDS: Final = """
SELECT b.id, b.name, b.tier, b.daily_cap, b.reserve,
       CASE WHEN b.capped_until > now() THEN b.capped_until END AS capped_until,
       (SELECT count(*)::int FROM engine_campaign c WHERE c.brand_id = b.id) AS campaigns,
       (SELECT coalesce(sum(coalesce(o.segments, 1)), 0)::bigint
        FROM engine_outbound o JOIN engine_did d ON d.id = o.did_id JOIN engine_campaign c ON c.id = d.campaign_id
        WHERE c.brand_id = b.id AND o.sending_at >= $1) AS used_today
FROM engine_brand b ORDER BY b.name
"""
CREATE_CAMPAIGN: Final = "INSERT INTO engine_campaign (name, brand_id, mps) VALUES ($1, $2, $3) RETURNING id"
CAMPAIGN_ID: Final = "SELECT id FROM engine_campaign WHERE name = $1"
UPDATE_CAMPAIGN: Final = "UPDATE engine_campaign SET mps = $2 WHERE name = $1 RETURNING id"
LIST_CAMPAIGNS: Final = """
SELECT c.id, c.name, b.name AS brand, c.mps, CASE WHEN c.slowed_until > now() THEN c.slowed_until END AS slowed_until,
       (SELECT count(*)::int FROM engine_did d WHERE d.campaign_id = c.id) AS dids
FROM engine_campaign c JOIN engine_brand b ON b.id = c.brand_id
ORDER BY c.name
"""
# Of the senders $1, those a carrier account's IncomingPhoneNumbers holds (their SmsUrl can point at the engine):
# phone numbers. A sender ID is never texted back; a short code's webhook is set with the carrier (ShortCodes).
INBOUND_NUMBERS: Final = """
SELECT number FROM engine_did WHERE number = ANY($1::text[]) AND sender_type IN ('long_code', 'toll_free')
"""
# Put DIDs of SMSC $1 in campaign $3 (NULL: out of theirs): the numbers $2, or every long code when $2 is empty.
ASSIGN_CAMPAIGN: Final = """
UPDATE engine_did SET campaign_id = $3
WHERE smsc_id = $1 AND CASE WHEN cardinality($2::text[]) = 0 THEN sender_type = 'long_code' ELSE number = ANY($2) END
RETURNING number
"""
# An SMSC's Messaging Service sender (replaced whenever its carrier account is).
DROP_SERVICE_SENDERS: Final = "DELETE FROM engine_did WHERE smsc_id = $1 AND sender_type = 'messaging_service'"
# The senders an SMSC holds, to check what may share it.
SMSC_SENDERS: Final = "SELECT number, sender_type, country FROM engine_did WHERE smsc_id = $1"
# The app's senders by type and campaign (with their brand), for `engine app status`.
APP_SENDERS: Final = """
SELECT d.sender_type, count(*)::int AS n, c.name AS campaign, c.mps, c.slowed_until, b.name AS brand,
       b.daily_cap, b.reserve, b.capped_until, b.id AS brand_id
FROM engine_app a
JOIN engine_did d ON d.smsc_id = a.smsc_id
LEFT JOIN engine_campaign c ON c.id = d.campaign_id
LEFT JOIN engine_brand b ON b.id = c.brand_id
WHERE a.id = $1
GROUP BY d.sender_type, c.name, c.mps, c.slowed_until, b.name, b.daily_cap, b.reserve, b.capped_until, b.id
ORDER BY d.sender_type, c.name
"""
# Segments a brand sent since $2 (epoch seconds: the carrier day's start), whoever sent them.
BRAND_SENT_SINCE: Final = """
SELECT coalesce(sum(coalesce(o.segments, 1)), 0)::bigint
FROM engine_outbound o JOIN engine_did d ON d.id = o.did_id JOIN engine_campaign c ON c.id = d.campaign_id
WHERE c.brand_id = $1 AND o.sending_at >= to_timestamp($2)
"""
# The app's messages waiting for their brand's daily cap to reset.
APP_THROTTLED: Final = """
SELECT count(*)::int FROM engine_outbound WHERE app_id = $1 AND state = 'queued' AND reason = 'throttled'
"""

# ---- what the worker paces ------------------------------------------------------------------------
LOAD_CAMPAIGNS: Final = """
SELECT id, brand_id, mps, coalesce(slowed_until > now(), false) AS slowed FROM engine_campaign
"""
HOLDING_APPS: Final = "SELECT id FROM engine_app WHERE hold_transactional"
LOAD_BRANDS: Final = """
SELECT id, daily_cap, reserve, extract(epoch FROM capped_until)::float8 AS capped_until
FROM engine_brand WHERE daily_cap IS NOT NULL OR capped_until > now()
"""
# Messages the carrier day holds back (the brand's cap is reached): back to the queue until the reset, with the
# reason the app sees while they wait. Only our own claims ($3), found by primary key (see queries.MARK_SENDING).
DEFER_THROTTLED: Final = """
UPDATE engine_outbound o
SET state = 'queued', claimed_by = NULL, lease_until = NULL, defers = o.defers + 1, reason = 'throttled',
    due_at = now() + make_interval(secs => u.delay), updated_at = now()
FROM unnest($1::bigint[], $2::float8[]) AS u(id, delay)
WHERE o.id = u.id AND CASE WHEN o.state = 'claimed' THEN o.claimed_by END = $3
"""

# ---- carrier feedback ------------------------------------------------------------------------------
# The carrier refused messages ($1 ids, $2 codes, $3 their sids) for a campaign's rate (30022) or a brand's daily cap
# ($5 codes: 30023): each goes back to the queue instead of failing (reason 'throttled', no delivery report: it is
# still pending to the app), due again after $6 seconds, or at the carrier day's reset ($4, epoch) for a daily cap;
# the refused attempt's sid is retired so its late callbacks touch nothing. Its campaign slows down for $8 seconds,
# or its brand is held until the reset. Only messages sent fewer than $7 times; in one statement.
CARRIER_THROTTLED: Final = """
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, code, sid)
), requeued AS (
    UPDATE engine_outbound o
    SET state = 'queued', status = 0, status_rank = 0, provider_status = NULL, provider_message_id = NULL,
        retired_sid = u.sid, error_code = u.code, reason = 'throttled', claimed_by = NULL, lease_until = NULL,
        due_at = CASE WHEN u.code = ANY($5::int[]) THEN greatest(to_timestamp($4), now())
                      ELSE now() + make_interval(secs => $6) END,
        updated_at = now()
    FROM u
    WHERE o.id = u.id AND o.state IN ('sending', 'sent', 'unknown') AND o.attempts < $7
      AND (o.provider_message_id IS NULL OR o.provider_message_id = u.sid) AND o.retired_sid IS DISTINCT FROM u.sid
    RETURNING o.id, u.code, o.did_id
), slowed AS (
    UPDATE engine_campaign c SET slowed_until = now() + make_interval(secs => $8)
    FROM engine_did d JOIN requeued r ON r.did_id = d.id
    WHERE c.id = d.campaign_id AND r.code <> ALL($5::int[])
    RETURNING c.id
), held AS (
    UPDATE engine_brand b SET capped_until = greatest(coalesce(b.capped_until, to_timestamp($4)), to_timestamp($4))
    FROM engine_did d JOIN engine_campaign c ON c.id = d.campaign_id JOIN requeued r ON r.did_id = d.id
    WHERE b.id = c.brand_id AND r.code = ANY($5::int[])
    RETURNING b.id
)
SELECT r.id, r.code, c.name AS campaign, b.name AS brand
FROM requeued r LEFT JOIN engine_did d ON d.id = r.did_id LEFT JOIN engine_campaign c ON c.id = d.campaign_id
LEFT JOIN engine_brand b ON b.id = c.brand_id
"""
# /metrics: every brand's day so far (since $1, the carrier day's start) and every campaign's last minute.
LEVEL_STATS: Final = """
SELECT 'brand' AS level, b.name, b.daily_cap::float8 AS capacity, coalesce(b.capped_until > now(), false) AS held,
       (SELECT coalesce(sum(coalesce(o.segments, 1)), 0)::float8
        FROM engine_outbound o JOIN engine_did d ON d.id = o.did_id JOIN engine_campaign c ON c.id = d.campaign_id
        WHERE c.brand_id = b.id AND o.sending_at >= $1) AS sent
FROM engine_brand b
UNION ALL
SELECT 'campaign', c.name, c.mps::float8, coalesce(c.slowed_until > now(), false),
       (SELECT coalesce(sum(coalesce(o.segments, 1)), 0)::float8
        FROM engine_outbound o JOIN engine_did d ON d.id = o.did_id
        WHERE d.campaign_id = c.id AND o.sending_at > now() - interval '60 seconds')
FROM engine_campaign c
"""
