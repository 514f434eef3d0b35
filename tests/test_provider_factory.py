"""engine.providers.factory: an engine_provider row's kind picks its client, in one place."""

from __future__ import annotations

import re

import aiohttp
import asyncpg
import pytest

from engine.errors import ConfigError
from engine.providers.factory import DEFAULT_BASE_URLS, PROVIDER_KINDS, carrier_client
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.helpers.engine import carrier


@pytest.mark.parametrize(("kind", "url"), [("twilio", "https://api.twilio.com"), ("fake", "http://127.0.0.1:8099")])
async def test_each_kind_without_a_base_url_uses_its_default(kind: str, url: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = carrier_client(session, kind=kind, account_sid="AC1", auth_token="t", base_url=None,
                                messaging_service_sid="MG1")
    assert f"base_url={url!r}" in repr(client)
    assert client.account_sid == "AC1" and client.messaging_service_sid == "MG1"


async def test_a_fake_row_reaches_the_fake_carrier_at_its_base_url() -> None:
    async with carrier() as fake, aiohttp.ClientSession() as session:
        client = carrier_client(session, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                auth_token=DEFAULT_AUTH_TOKEN, base_url=fake.base_url, timeout=5.0)
        assert (await client.fetch_account())[0] is True


async def test_an_unknown_kind_is_a_clear_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match=r"unknown provider kind 'smpp': expected one of 'twilio', 'fake'"):
            carrier_client(session, kind="smpp", account_sid="AC1", auth_token="t", base_url="http://x")


async def test_the_factory_knows_every_kind_the_schema_allows(pool: asyncpg.Pool) -> None:
    check = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'engine_provider'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%kind%'"
    )
    assert set(re.findall(r"'(\w+)'::text", check)) == set(PROVIDER_KINDS) == set(DEFAULT_BASE_URLS)
