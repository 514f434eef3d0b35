"""Callback signatures, the callback form and the retry schedule (pure), and the README snippet."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import events
from engine.callbacks import form
from engine.callbacks.outbox import backoff_delay
from engine.callbacks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    sign,
    verify_signature,
)
from engine.store.outbox_queries import ENQUEUE_MANY

SECRET = "c0ffee" * 8
BODY = b"type=delivery_report&app_id=7&event_id=e1&final=true&message_id=42&status=1"
NOW = 1_718_000_000.0


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1718000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1718000000, BODY) == "v1=" + expected
    headers = sign(SECRET, BODY, now=NOW + 0.7)
    assert headers == {TIMESTAMP_HEADER: "1718000000", SIGNATURE_HEADER: "v1=" + expected}


def test_verify_accepts_ours_and_refuses_everything_else() -> None:
    h = sign(SECRET, BODY, now=NOW)
    ts, sig = h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER]
    assert verify_signature(SECRET, ts, BODY, sig, now=NOW)
    assert verify_signature(SECRET, ts, BODY, sig, now=NOW + 299)
    assert not verify_signature("wrong-secret", ts, BODY, sig, now=NOW)  # wrong secret
    assert not verify_signature(SECRET, ts, BODY + b"&x=1", sig, now=NOW)  # tampered body
    assert not verify_signature(SECRET, str(int(NOW) + 1), BODY, sig, now=NOW)  # other timestamp
    assert not verify_signature(SECRET, ts, BODY, sig, now=NOW + 301)  # replayed later
    assert not verify_signature(SECRET, ts, BODY, sig, now=NOW - 301)  # from the future
    assert verify_signature(SECRET, ts, BODY, sig, now=NOW + 3000, tolerance=3600)
    for bad_ts in ("", "abc", "-1", "1.5", "１２３"):
        assert not verify_signature(SECRET, bad_ts, BODY, sig, now=NOW)
    for bad_sig in ("", "v1=", sig.upper(), sig[:-1], sig.replace("v1=", "v0=")):
        assert not verify_signature(SECRET, ts, BODY, bad_sig, now=NOW)
    # Several signatures (e.g. during a secret rotation): any one may match.
    assert verify_signature(SECRET, ts, BODY, f"v1=deadbeef, {sig}", now=NOW)


@given(secret=st.text(min_size=1), body=st.binary(), now=st.integers(0, 2**40))
def test_sign_then_verify_roundtrip(secret: str, body: bytes, now: int) -> None:
    h = sign(secret, body, now=now)
    assert verify_signature(secret, h[TIMESTAMP_HEADER], body, h[SIGNATURE_HEADER], now=now)
    assert not verify_signature(secret + "x", h[TIMESTAMP_HEADER], body, h[SIGNATURE_HEADER], now=now)


def test_form_has_envelope_then_sorted_fields_as_strings() -> None:
    payload: dict[str, Any] = {
        "status": 2, "final": True, "message_id": 42, "error_code": None, "phone_numbers": ["+1", "+2"],
        "type": "forged", "event_id": "forged",
    }
    fields = form.form_fields("delivery_report", 7, "e-1", payload)
    assert fields == [
        ("type", "delivery_report"), ("app_id", "7"), ("event_id", "e-1"),
        ("final", "true"), ("message_id", "42"), ("phone_numbers", "+1,+2"), ("status", "2"),
    ]
    raw = form.encode_form("incoming_message", 7, "e-2", {"body": "Héllo & bye=1", "auto_subscribe": False})
    assert dict(parse_qsl(raw.decode())) == {
        "type": "incoming_message", "app_id": "7", "event_id": "e-2", "auto_subscribe": "false",
        "body": "Héllo & bye=1",
    }


def test_payload_builders_follow_the_seed() -> None:
    # (delivery_report is built by the status statements themselves, in SQL: its payload is tested in test_outbox.)
    msg = events.incoming_message("+13472643707", "HELLO", "2024-06-10T12:00:00Z", tag="t1", auto_responded=True)
    assert msg == {"phone_number": "+13472643707", "body": "HELLO", "sent_at": "2024-06-10T12:00:00Z",
                   "tag": "t1", "auto_subscribe": "false", "auto_responded": "true"}
    assert events.session_closed(["+1", "+2"]) == {"phone_numbers": "+1,+2"}
    assert events.phone_event("+1") == {"phone_number": "+1"}
    assert events.no_unicode_support("+44", "héllo") == {"destination": "+44", "message": "héllo"}
    assert events.invalid_characters(["“", "…"]) == {"characters": "“,…"}


def test_the_readme_documents_every_event_type_and_no_other() -> None:
    """Applications route callbacks by `type`: the README's table must name exactly the types the engine sends."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Callbacks\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| --- |", 1)[1].split("\n\n", 1)[0]  # the rows below the header
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert documented == events.EVENT_TYPES


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delays = [backoff_delay(n, base=2.0, cap=3600.0, jitter=1.0) for n in range(1, 15)]
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert max(delays) == 3600.0
    assert backoff_delay(3, base=2.0, cap=3600.0, jitter=0.5) == 4.0
    # A longer Retry-After wins, but never beyond the cap.
    assert backoff_delay(1, base=2.0, cap=3600.0, jitter=1.0, retry_after=120) == 120
    assert backoff_delay(1, base=2.0, cap=60.0, jitter=1.0, retry_after=7200) == 60


def _readme_snippet() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [snippet] = [b for b in blocks if "X-Engine-Signature" in b]
    return str(snippet)


def test_readme_verification_snippet_works_and_is_short() -> None:
    snippet = _readme_snippet()
    assert len(snippet.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verify = namespace["verify_callback"]
    import time

    headers = sign(SECRET, BODY, now=time.time())
    assert verify(SECRET, headers, BODY) is True
    assert verify("wrong-secret", headers, BODY) is False
    assert verify(SECRET, headers, BODY + b"x") is False
    assert verify(SECRET, sign(SECRET, BODY, now=time.time() - 600), BODY) is False
    assert verify(SECRET, {}, BODY) is False


@pytest.mark.parametrize("kind", sorted(events.EVENT_TYPES))
async def test_every_event_type_is_allowed_by_the_schema(pool: asyncpg.Pool, kind: str) -> None:
    """The migrated outbox takes every event type the engine emits (and refuses one it does not)."""
    app_id = await pool.fetchval("INSERT INTO engine_app (name) VALUES ('a') RETURNING id")
    assert await pool.fetch(ENQUEUE_MANY, [app_id], [kind], ["{}"])
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.fetch(ENQUEUE_MANY, [app_id], [kind + "_not"], ["{}"])
