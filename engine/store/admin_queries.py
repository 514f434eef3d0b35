"""Named SQL of administration: applications, SMSCs, carrier accounts and DIDs (engine/store/admin.py)."""

from __future__ import annotations

from typing import Final

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
# A new API key (its hash): the old one stops working at once; API servers drop their cache on the notification.
ROTATE_API_KEY: Final = "UPDATE engine_app SET api_key_hash = $2 WHERE name = $1 RETURNING id"
API_KEYS_CHANGED: Final = "SELECT pg_notify('engine_api_keys', '')"
# Before DELETE_APP: the MOs that outlive the app lose their links to it, its carrier accounts and its DIDs in one
# update (left to the three ON DELETE SET NULL actions of one cascade, the second found the row changed by the
# first and failed its foreign-key check on a DID the cascade had already deleted).
DETACH_APP_INBOUND: Final = """
WITH app AS (SELECT id FROM engine_app WHERE name = $1),
providers AS (SELECT p.id FROM engine_provider p WHERE p.app_id IN (SELECT id FROM app)),
dids AS (SELECT d.id FROM engine_did d JOIN engine_smsc s ON s.id = d.smsc_id WHERE s.app_id IN (SELECT id FROM app))
UPDATE engine_inbound i
SET app_id = CASE WHEN i.app_id IN (SELECT id FROM app) THEN NULL ELSE i.app_id END,
    provider_id = CASE WHEN i.provider_id IN (SELECT id FROM providers) THEN NULL ELSE i.provider_id END,
    did_id = CASE WHEN i.did_id IN (SELECT id FROM dids) THEN NULL ELSE i.did_id END
WHERE i.app_id IN (SELECT id FROM app) OR i.provider_id IN (SELECT id FROM providers)
   OR i.did_id IN (SELECT id FROM dids)
"""
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
    "hold_transactional": "UPDATE engine_app SET hold_transactional = $2 WHERE id = $1",
    "callback_concurrency": "UPDATE engine_app SET callback_concurrency = $2 WHERE id = $1",
    "session_idle_seconds": "UPDATE engine_app SET session_idle_seconds = $2 WHERE id = $1",
    "loop_max_replies": "UPDATE engine_app SET loop_max_replies = $2 WHERE id = $1",
    "loop_window_seconds": "UPDATE engine_app SET loop_window_seconds = $2 WHERE id = $1",
    "loop_max_repeats": "UPDATE engine_app SET loop_max_repeats = $2 WHERE id = $1",
    "loop_cooldown_seconds": "UPDATE engine_app SET loop_cooldown_seconds = $2 WHERE id = $1",
    # Lifetime, retention and quiet hours (0014): intervals travel as their text ('7200 seconds', '18 months').
    "valid_for": "UPDATE engine_app SET valid_for = $2::text::interval WHERE id = $1",
    "retention": "UPDATE engine_app SET retention = $2::text::interval WHERE id = $1",
    "quiet_hours": "UPDATE engine_app SET quiet_hours = $2 WHERE id = $1",
    "quiet_window": """
UPDATE engine_app SET quiet_start = split_part($2::text, '-', 1)::time, quiet_end = split_part($2::text, '-', 2)::time
WHERE id = $1""",
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
       extract(epoch FROM a.dedup_window)::float8 AS dedup_seconds, a.callback_concurrency,
       extract(epoch FROM a.valid_for)::float8 AS valid_for_seconds, a.retention::text AS retention, a.quiet_hours,
       to_char(a.quiet_start, 'HH24:MI') || '-' || to_char(a.quiet_end, 'HH24:MI') AS quiet_window,
       a.hold_transactional
FROM engine_app a WHERE a.name = $1
"""
SET_SMSC_PROVIDER: Final = "UPDATE engine_smsc SET provider_id = $2 WHERE id = $1"
# Per DID: number, limit, burst, sender type, country; $7 the campaign, applied when $8 (given, or cleared).
ADD_DIDS: Final = """
INSERT INTO engine_did (smsc_id, number, limit_per_min, burst, sender_type, country, campaign_id)
SELECT $1, u.n, u.lim, u.b, u.t, u.c, $7
FROM unnest($2::text[], $3::int[], $4::int[], $5::text[], $6::text[]) AS u(n, lim, b, t, c)
ON CONFLICT (number) DO UPDATE SET limit_per_min = EXCLUDED.limit_per_min, burst = EXCLUDED.burst,
    sender_type = EXCLUDED.sender_type, country = EXCLUDED.country,
    campaign_id = CASE WHEN $8::boolean THEN EXCLUDED.campaign_id ELSE engine_did.campaign_id END, enabled = true
WHERE engine_did.smsc_id = EXCLUDED.smsc_id
"""
DIDS_OWNED_ELSEWHERE: Final = "SELECT number FROM engine_did WHERE number = ANY($1::text[]) AND smsc_id <> $2"
LIST_DIDS: Final = """
SELECT d.number, d.limit_per_min, d.burst, d.enabled, d.sender_type, d.country, c.name AS campaign
FROM engine_did d LEFT JOIN engine_campaign c ON c.id = d.campaign_id
WHERE d.smsc_id = $1 ORDER BY d.number
"""
REMOVE_DID: Final = "DELETE FROM engine_did WHERE smsc_id = $1 AND number = $2 RETURNING id"
