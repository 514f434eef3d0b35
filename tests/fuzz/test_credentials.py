"""Webhook signatures compared in constant time; API keys stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from engine.providers.twilio import twilio_signature, validate_twilio_signature
from engine.testing import DEFAULT_AUTH_TOKEN
from tests.fuzz.live import UNCLOSED_SPOOL, LiveEngine, api_post

pytestmark = UNCLOSED_SPOOL


def test_webhook_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://engine.example/webhooks/twilio/status/1/2"
    params = {"MessageStatus": "delivered", "MessageSid": "SM" + "a" * 32}
    good = twilio_signature(DEFAULT_AUTH_TOKEN, url, params)
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, good)
    # Wrong signatures of the same length (differing first, in the middle, last) all fail.
    for i in (0, len(good) // 2, len(good) - 2):
        wrong = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :]
        assert len(wrong) == len(good) and not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, wrong)
    for odd in ("", good[:-1], good + "=", "é" * len(good), "\x00" * len(good), good.lower()):
        assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, odd)
    assert not validate_twilio_signature("other-token", url, params, good)
    assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url + "?", params, good)
    # The decision is hmac.compare_digest's, on the whole expected and given signatures (not ==, not a prefix).
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # looked up at call time by engine.providers.twilio
    forged = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, good)
    assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, forged)
    assert [sorted(pair) for pair in calls] == [[good.encode()] * 2, sorted([good.encode(), forged.encode()])]


def test_api_keys_are_stored_hashed(engine: LiveEngine) -> None:
    rows = engine.fetch("SELECT row_to_json(a)::text AS doc, api_key_hash FROM engine_app a ORDER BY id")
    assert len(rows) == 2
    for row, key in zip(rows, (engine.key, engine.bare_key), strict=True):
        assert key not in row["doc"]
        assert row["api_key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    dump = "".join(r["doc"] for r in engine.fetch(
        "SELECT row_to_json(t)::text AS doc FROM (SELECT * FROM engine_app) t UNION ALL "
        "SELECT row_to_json(p)::text FROM engine_provider p UNION ALL SELECT row_to_json(s)::text FROM engine_smsc s"))
    assert engine.key not in dump and engine.bare_key not in dump
    # The key works; its stored hash does not (a leaked row is not a credential).
    assert engine.send(api_post("dids", {"api_key": engine.key})).status == 200
    stored = rows[0]["api_key_hash"]
    assert engine.send(api_post("dids", {"api_key": stored})).status == 401
