"""One settings object, read from ENGINE_* environment variables, overridden by command-line flags.

Never read at import time: `Settings.from_env()` is called by the command line once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from engine.errors import ConfigError

DeliveryMode = Literal["at-most-once", "at-least-once"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Engine settings; every field has an ENGINE_<FIELD> environment variable."""

    dsn: str | None = None  # PostgreSQL DSN; None = embedded pgserver in data_dir
    data_dir: Path = Path(".engine/pgdata")
    host: str = "127.0.0.1"  # HTTP API / webhook listener
    port: int = 8080
    public_url: str | None = None  # how carriers reach our webhooks; default http://host:port
    batch_size: int = 500  # rows per claim
    max_in_flight: int = 256  # concurrent provider requests per worker
    lease_seconds: float = 30.0  # claim lease; a dead worker's rows come back after this
    horizon_seconds: float = 20.0  # buffer at most this far ahead of each DID's pace
    poll_seconds: float = 1.0  # fallback poll when no NOTIFY arrives
    max_attempts: int = 5  # provider attempts before a message fails
    request_timeout: float = 15.0  # provider request timeout
    read_timeout: float = 30.0  # HTTP server: how long a request's body may take to arrive (else 408)
    delivery: DeliveryMode = "at-most-once"
    # Comma-separated E.164 prefixes of destinations whose carriers take no Unicode (e.g. "+7,+90"):
    # a UCS-2 message to them is not sent and the app gets `no_unicode_support`.
    no_unicode_prefixes: str = ""
    max_body_chars: int = 1600  # longest body accepted (Twilio's limit for one concatenated message)
    max_segments: int = 10  # most segments one message may bill; longer bodies are refused up front
    drain_seconds: float = 30.0  # on SIGTERM: how long in-flight sends may take before the worker exits
    # Workers expected to run at once (`engine worker --processes N` sets N for its children): for its first
    # lease period a starting worker takes no more than its share among that many, so workers started together
    # split the DIDs at once instead of one taking them all and handing half over later.
    expected_workers: int = 1
    # Every worker purges what is older than each app's retention this often (0: only `engine purge` does), in
    # transactions of purge_batch rows.
    purge_seconds: float = 3600.0
    purge_batch: int = 1000
    log_level: str = "INFO"
    # The Fernet key that seals carrier tokens at rest (engine.store.vault); unset: the key file below.
    secret_key: str | None = field(default=None, repr=False)
    secret_key_file: Path | None = None  # default: secret.key beside the embedded data directory
    # The console's session cookie gets the Secure attribute: 'auto' (when the request or the public URL is
    # https), 'yes' (always: the console is only reached through https) or 'no'.
    console_secure_cookie: str = "auto"

    def __post_init__(self) -> None:
        if self.port < 0 or self.port > 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        for name in ("batch_size", "max_in_flight", "max_attempts", "max_body_chars", "max_segments",
                     "expected_workers", "purge_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        for name in ("lease_seconds", "horizon_seconds", "poll_seconds", "request_timeout", "read_timeout",
                     "drain_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0")
        if self.purge_seconds < 0:
            raise ConfigError("purge_seconds must be >= 0 (0 turns the worker's purge off)")
        if self.console_secure_cookie not in ("auto", "yes", "no"):
            raise ConfigError(f"console_secure_cookie must be auto, yes or no, got {self.console_secure_cookie!r}")
        if self.delivery not in get_args(DeliveryMode):
            raise ConfigError(f"delivery must be one of {get_args(DeliveryMode)}, got {self.delivery!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ENGINE_* variables (defaults for the rest)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("ENGINE_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw, cls.__dataclass_fields__[f.name].default)
        return cls(**values)

    def override(self, **flags: Any) -> Settings:
        """Return a copy with every non-None flag applied (flags beat the environment)."""
        given = {k: v for k, v in flags.items() if v is not None}
        return replace(self, **given)

    @property
    def no_unicode_destinations(self) -> tuple[str, ...]:
        """The parsed `no_unicode_prefixes`."""
        return tuple(p.strip() for p in self.no_unicode_prefixes.split(",") if p.strip())

    @property
    def secret_key_path(self) -> Path:
        """Where the secret key is kept when ENGINE_SECRET_KEY is unset: apart from the database's own files, so a
        copy of the data directory alone does not reveal the tokens sealed in it."""
        if self.secret_key_file is not None:
            return Path(self.secret_key_file)
        return self.data_dir.parent / "secret.key"

    @property
    def callback_base(self) -> str:
        """Base URL carriers use for status and inbound webhooks."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


def _coerce(name: str, raw: str, default: Any) -> Any:
    """Convert an environment string to the type of the field's default."""
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "t", "true", "y", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError as exc:
        raise ConfigError(f"ENGINE_{name.upper()}={raw!r} is not valid: {exc}") from exc
    return raw
