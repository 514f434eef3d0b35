"""Calls with good parts and one bad part fail as a whole and change nothing; forged callbacks are refused."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.checks import describe, fault_log
from tests.fuzz.live import UNCLOSED_SPOOL, LiveEngine, Request, api_post
from tests.fuzz.strategies import ALL_PARAMS, junk

pytestmark = UNCLOSED_SPOOL


def failing_calls(engine: LiveEngine) -> list[tuple[str, dict[str, str]]]:
    """Calls with good parts and one bad part, each of which must fail as a whole (4xx)."""
    valid = "2125550100,2125550101,+1(347)264-3707"
    key = engine.key
    return [
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "on": "not a date"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "action_expected": "maybe"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "tag": "x" * 256}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "tag": "a\x00b"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "x" * 1601}),
        ("send_message", {"api_key": key, "phone_numbers": ",".join(["2125550100"] * 1001), "body": "hi"}),
        ("send_message", {"api_key": key + "x", "phone_numbers": valid, "body": "hi"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "on": "0001-01-01T00:00:00+0500"}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}", "recipients": json.dumps(
            {"2125550100": {"name": "a"}, "2125550101": {"name": "b"}, "2125550102": {}})}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}", "recipients": json.dumps(
            {"2125550100": {"name": "a"}, "2125550101": {"name": "x" * 1600}})}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}",
                           "recipients": '{"2125550100": {"name": "a"}, "2125550101": {"name": [1]}}'}),
        ("send_messages", {"api_key": key, "template": "Hi", "recipients": '{"2125550100": {}}',
                           "action_expected": "1", "on": "31/31/2020"}),
        ("cancel_messages", {"api_key": key, "message_ids": "1,2,x"}),
        ("delivery_status", {"api_key": key, "message_ids": "1,2,1_000x"}),
        ("blacklist", {"api_key": key, "phone_numbers": ",".join(["2125550100"] * 1001)}),
        ("blacklist", {"api_key": key, "phone_numbers": "2125550100,2125550101\x00"}),
        ("close_sessions", {"api_key": key, "phone_numbers": "2125550100\x00"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "mode": "2"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe": "perhaps"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe_tags": ",".join(
            f"t{i}" for i in range(21))}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe_tags": "x" * 65}),
        ("dissociate_keyword", {"api_key": engine.bare_key + "?", "keyword": "BOOKS"}),
        ("remove_tag", {"api_key": key, "phone_number": "12345", "tag": "t"}),
        ("add_did", {"api_key": key, "number": "12345"}),
        ("add_did", {"api_key": key, "number": "6462000002", "country": "USA"}),
        ("add_did", {"api_key": engine.bare_key, "number": "6462000002"}),
        ("delete_did", {"api_key": key, "number": "6462000009"}),
        ("find_did", {"api_key": key, "number": "2'; DROP TABLE engine_did; --"}),
    ]


def test_calls_that_fail_change_nothing(engine: LiveEngine) -> None:
    # Some state for the failing calls to spoil: queued messages, a keyword, a session, a blacklisting.
    ok = engine.send(api_post("send_message", {"api_key": engine.key, "phone_numbers": "2125550100,2125550101",
                                                       "body": "hi", "action_expected": "yes"}))
    assert ok.status == 200, ok
    engine.issued.extend(int(i) for i in ok.json()["message_ids"].split(","))
    for call, params in [("associate_keyword", {"keyword": "BOOKS", "mode": "1"}),
                         ("blacklist", {"phone_number": "2125550199"})]:
        assert engine.send(api_post(call, {"api_key": engine.key, **params})).status == 200
    before = engine.snapshot()
    statuses: list[int] = []
    with fault_log() as faults:
        for call, params in failing_calls(engine):
            for method in ("GET", "POST"):
                reply = engine.send(api_post(call, params, method=method))
                assert 400 <= reply.status < 500, (call, params, reply)
                statuses.append(reply.status)
        failing = refused_callbacks(engine)

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.data())
        def poisoned(data: st.DataObject) -> None:
            call, params = data.draw(st.sampled_from(failing_calls(engine)))
            extra = data.draw(st.dictionaries(st.sampled_from(ALL_PARAMS), junk, max_size=2))
            merged = {**extra, **params}  # the poisoned part always wins
            reply = engine.send(api_post(call, merged, method=data.draw(st.sampled_from(["GET", "POST"]))))
            assert 400 <= reply.status < 500, (call, merged, reply)

        poisoned()
    assert engine.snapshot() == before
    assert not faults, describe(faults)
    assert failing > 0
    assert set(statuses) <= {400, 401, 409}


def refused_callbacks(engine: LiveEngine) -> int:
    """Webhooks that must be refused: forged or unknown; none of them may touch the message."""
    mid = engine.issued[0]
    params = {"MessageStatus": "delivered", "MessageSid": "SM" + "1" * 32}
    refused = 0
    for provider, message, signature in [
        (str(engine.provider_id), str(mid), engine.signed(engine.status_url("0", str(mid)), params)),
        (str(engine.provider_id), str(mid), ""),
        ("0", str(mid), engine.signed(engine.status_url("0", str(mid)), params)),
        (str(engine.provider_id + 1), str(mid), engine.signed(engine.status_url(str(engine.provider_id + 1), str(mid)),
                                                             params)),
        ("99999999999999999999", str(mid), "x"),
        (str(engine.provider_id), str(mid), engine.signed(engine.status_url(str(engine.provider_id), str(mid)), params,
                                                          token="wrong")),
    ]:
        target = engine.status_url(provider, message)
        reply = engine.send(Request("webhook", "POST", target, urlencode(params).encode(), (
            ("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature))))
        assert 400 <= reply.status < 500, (provider, message, reply)
        refused += 1
    return refused
