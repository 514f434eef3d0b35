"""Named SQL of the topology the worker paces: DIDs, apps, carrier accounts and limits, recent sends."""

from __future__ import annotations

from typing import Final

LOAD_DIDS: Final = """
SELECT d.id, d.smsc_id, d.number, d.limit_per_min, d.burst, d.sender_type, d.campaign_id, c.brand_id
FROM engine_did d LEFT JOIN engine_campaign c ON c.id = d.campaign_id
WHERE d.enabled ORDER BY d.id
"""
# What admission applies per app (single_sms comes from the carrier account of the app's SMSC).
LOAD_APPS: Final = """
SELECT a.id, a.name, a.smsc_id, a.split_mode, a.smart_encoding, a.flood_limit,
       extract(epoch FROM a.flood_period)::float8 AS flood_seconds, coalesce(p.single_sms, false) AS single_sms,
       a.quiet_hours, a.quiet_start, a.quiet_end
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
