"""The one place an ``engine_provider`` row becomes a carrier client, chosen by its ``kind``.

The API (number search, purchase, release), the CLI (``provider test``) and the dispatch worker all
build their clients here, so a new kind of carrier is added in one function. Both kinds known today
speak Twilio's REST wire format: ``fake`` is the loopback carrier (``engine fake-carrier``).
"""

from __future__ import annotations

from typing import Final, Protocol

import aiohttp

from engine.errors import ConfigError
from engine.providers.twilio import TwilioClient

__all__ = ["DEFAULT_BASE_URLS", "PROVIDER_KINDS", "Account", "account_client", "carrier_client"]

# Where a kind's API lives when its row has no base_url: Twilio itself, or the fake carrier's default listener.
DEFAULT_BASE_URLS: Final = {
    "twilio": "https://api.twilio.com",
    "fake": "http://127.0.0.1:8099",
}
PROVIDER_KINDS: Final = tuple(DEFAULT_BASE_URLS)  # what engine_provider.kind may hold (its CHECK constraint)


class Account(Protocol):
    """A stored carrier account as the store hands it out (its token already opened)."""

    @property
    def kind(self) -> str: ...
    @property
    def account_sid(self) -> str: ...
    @property
    def auth_token(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def messaging_service_sid(self) -> str | None: ...


def account_client(session: aiohttp.ClientSession, account: Account, timeout: float) -> TwilioClient:
    """The client for a stored *account* (the CLI's provider and DID commands, the console)."""
    return carrier_client(
        session, kind=account.kind, account_sid=account.account_sid, auth_token=account.auth_token,
        base_url=account.base_url, messaging_service_sid=account.messaging_service_sid, timeout=timeout,
    )


def carrier_client(
    session: aiohttp.ClientSession,
    *,
    kind: str,
    account_sid: str,
    auth_token: str,
    base_url: str | None,
    messaging_service_sid: str | None = None,
    timeout: float = 15.0,
) -> TwilioClient:
    """A client for one carrier account (the fields of its ``engine_provider`` row) on the caller's *session*.

    An unknown *kind* is a :class:`~engine.errors.ConfigError` naming the kinds there are.
    """
    default_url = DEFAULT_BASE_URLS.get(kind)
    if default_url is None:
        known = ", ".join(repr(k) for k in PROVIDER_KINDS)
        raise ConfigError(f"unknown provider kind {kind!r}: expected one of {known}")
    return TwilioClient(
        session,
        account_sid=account_sid,
        auth_token=auth_token,
        base_url=base_url or default_url,
        messaging_service_sid=messaging_service_sid,
        timeout=timeout,
    )
