"""Deleting an application (`engine app delete`, the demo's fresh start) with everything it owns, while the MOs it
handled outlive it: they keep their text and lose only their links to what was deleted."""

from __future__ import annotations

import asyncpg

from engine.store import admin


async def test_an_app_with_mos_and_replies_is_deleted_and_its_mos_kept(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "d")
    await admin.add_provider(pool, "d", kind="fake", account_sid="AC" + "0" * 32, auth_token="x" * 32,
                             base_url="http://127.0.0.1:9")
    await admin.add_dids(pool, "d", ["+16462000000"], limit_per_min=60)
    await admin.create_app(pool, "other")
    app = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'd'")
    other = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'other'")
    did = await pool.fetchval("SELECT id FROM engine_did")
    provider = await pool.fetchval("SELECT id FROM engine_provider")
    mo = await pool.fetchval(
        "INSERT INTO engine_inbound (provider_id, message_sid, phone, to_number, body, params, did_id, app_id) "
        "VALUES ($1, 'SM1', '+13472643707', '+16462000000', 'hi', '{}', $2, $3) RETURNING id", provider, did, app)
    # an MO of another app stays linked to it
    kept = await pool.fetchval(
        "INSERT INTO engine_inbound (message_sid, phone, to_number, body, params, app_id) "
        "VALUES ('SM2', '+13472643708', '+16462000001', 'yo', '{}', $1) RETURNING id", other)
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, in_reply_to, from_did, kind) "
        "VALUES ($1, '+13472643707', 'r', $2, $3, 'reply')", app, mo, did)

    assert await admin.delete_app(pool, "d")  # (failed with a foreign-key violation on engine_inbound.did_id)

    row = await pool.fetchrow("SELECT body, app_id, provider_id, did_id FROM engine_inbound WHERE id = $1", mo)
    assert dict(row) == {"body": "hi", "app_id": None, "provider_id": None, "did_id": None}
    assert await pool.fetchval("SELECT app_id FROM engine_inbound WHERE id = $1", kept) == other
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 0
    assert not await admin.delete_app(pool, "d")
