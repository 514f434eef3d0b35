"""Oversized bodies, SQL and header injection, and regressions: inputs the fuzzing found answered with 500 or
poisoning the status writer."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tests.fuzz.checks import TABLES, describe, fault_log
from tests.fuzz.live import UNCLOSED_SPOOL, LiveEngine, Reply, Request, api_post
from tests.fuzz.strategies import CRLF, INJECTED, MAX_BIGINT, SQL_INJECTION

pytestmark = UNCLOSED_SPOOL


def test_oversized_bodies_are_rejected_with_413_and_change_nothing(engine: LiveEngine) -> None:
    before = engine.snapshot()
    big = "x" * (1024 * 1024 + 10)
    form = urlencode({"api_key": engine.key, "phone_number": "2125550100", "body": big}).encode()
    reply = engine.send(Request("api", "POST", "/api/send_message", form,
                                (("Content-Type", "application/x-www-form-urlencoded"),), call="send_message"))
    assert reply.status == 413 and reply.json()["error"], reply
    body = (b"--b\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n" + big.encode() + b"\r\n--b--\r\n")
    reply = engine.send(Request("api", "POST", f"/api/send_message?api_key={engine.key}&phone_number=2125550100",
                                body, (("Content-Type", "multipart/form-data; boundary=b"),), call="send_message"))
    assert reply.status == 413, reply
    mid = engine.issued[0] if engine.issued else 1
    target = engine.status_url(str(engine.provider_id), str(mid))
    fields = {"MessageStatus": "delivered", "Padding": big}
    reply = engine.send(Request("webhook", "POST", target, urlencode(fields).encode(), (
        ("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", engine.signed(target, fields)))))
    assert reply.status == 413, reply
    # A query string over the request-line limit is refused before any handler runs.
    reply = engine.send(Request("api", "GET", f"/api/dids?api_key={engine.key}&pad={'x' * 20000}"))
    assert 400 <= reply.status < 500, reply
    assert engine.snapshot() == before


def test_sql_and_header_injection_are_inert(engine: LiveEngine) -> None:
    for text in SQL_INJECTION:
        reply = engine.send(api_post("send_message", {"api_key": engine.key, "phone_number": "2125550100",
                                                              "body": text, "tag": text}))
        assert reply.status == 200, reply
        (mid,) = (int(i) for i in reply.json()["message_ids"].split(","))
        row = engine.fetch("SELECT body, tag FROM engine_outbound WHERE id = $1", mid)[0]
        assert (row["body"], row["tag"]) == (text, text)  # stored verbatim, never executed
        for call, params in [("associate_keyword", {"keyword": text}), ("blacklist_status", {"phone_numbers": text}),
                             ("delivery_status", {"message_ids": text}), ("remove_tag", {"phone_number": text,
                                                                                        "tag": text})]:
            reply = engine.send(api_post(call, {"api_key": engine.key, **params}))
            assert reply.status in (200, 400), (call, reply)
        reply = engine.send(api_post("send_message", {"api_key": text, "phone_number": "2125550100",
                                                              "body": "x"}))
        assert reply.status == 401
    for table in TABLES:
        assert engine.fetchval("SELECT to_regclass($1)::text", table) == table
    assert engine.fetchval("SELECT count(*) FROM engine_app") == 2
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE state <> 'queued'") == 0
    # CRLF in parameters, in the call name and in the raw request line never becomes a response header.
    for text in CRLF:
        for request in (
            api_post("send_message", {"api_key": engine.key, "phone_number": text, "body": text, "tag": text}),
            api_post("send_message", {"api_key": engine.key, "phone_number": "2125550100", "body": "x",
                                              "on": text}),
            Request("api", "GET", f"/api/{quote(text, safe='')}?api_key={engine.key}"),
            Request("raw", raw=f"GET /api/dids?api_key={engine.key}&x={text} HTTP/1.1\r\nHost: x\r\n"
                    f"Connection: close\r\n\r\n".encode()),
        ):
            reply = engine.send(request)
            assert reply.status < 500, reply
            assert INJECTED.lower() not in {k.lower() for k, _ in reply.headers}, reply
            assert "set-cookie" not in {k.lower() for k, _ in reply.headers}, reply


# ---- regressions: inputs the fuzzing found answered with 500 or poisoning the status writer ------------


def multipart_request(call: str, body: bytes, content_type: str, query: str = "") -> Request:
    return Request("api", "POST", f"/api/{call}{query}", body, (("Content-Type", content_type),), call=call)


def test_known_hostile_inputs_are_client_errors(engine: LiveEngine) -> None:
    key = engine.key
    auth = f"?api_key={key}"
    part = b'--b\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi\r\n'
    upload = b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n\r\ndata\r\n'
    bad: list[Request] = [
        multipart_request("dids", b"--x--\r\n", "multipart/form-data; boundary=b", auth),  # no starting boundary
        multipart_request("dids", part, "multipart/form-data", auth),  # no boundary parameter
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # a part without a name
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data; name="\x00"\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # a malformed part header
        multipart_request("dids", upload + b'--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # an upload, then a broken part
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data; name="x"\r\n'
                          b"Content-Transfer-Encoding: base64\r\n\r\nA\r\n--b--\r\n",
                          "multipart/form-data; boundary=b", auth),  # bad base64
        multipart_request("dids", b"api_key=x", "application/x-www-form-urlencoded; charset=bogus", auth),
        Request("api", "POST", f"/api/dids{auth}", b"\x1f\x8bgarbage", (
            ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", "gzip")), call="dids"),
        api_post("send_message", {"api_key": key, "phone_number": "2125550100", "body": "x",
                                          "on": "0001-01-01T00:00:00+0500"}),
        api_post("send_message", {"api_key": key, "phone_number": "2125550100", "body": "x",
                                          "on": "9999-12-31T23:59:59-0500"}),
        api_post("delivery_status", {"api_key": key, "message_ids": "1_000"}),
        api_post("cancel_messages", {"api_key": key, "message_ids": "١٢"}),
    ]
    before = engine.snapshot()
    with fault_log() as faults:
        for n, request in enumerate(bad):
            reply = engine.send(request)
            assert reply.status == 400, (n, request, reply)
            assert reply.json()["error"], reply
        # Ids beyond bigint cannot exist: left out, like any unknown id.
        for ids in ("99999999999999999999", str(MAX_BIGINT + 1), "9" * 5000, f"{MAX_BIGINT},-{MAX_BIGINT + 5}"):
            reply = engine.send(api_post("delivery_status", {"api_key": key, "message_ids": ids}))
            assert (reply.status, reply.json()) == (200, {}), reply
            reply = engine.send(api_post("cancel_messages", {"api_key": key, "message_ids": ids}))
            assert (reply.status, reply.json()) == (200, {"canceled_count": 0}), reply
        # An upload among the fields is ignored (and its temporary file closed); the fields still count.
        reply = engine.send(multipart_request("send_message", upload + part + b"--b--\r\n",
                                              "multipart/form-data; boundary=b", f"{auth}&phone_number=2125550100"))
        assert reply.status == 200, reply
        engine.issued.extend(int(i) for i in reply.json()["message_ids"].split(","))
    assert not faults, describe(faults)
    assert engine.snapshot()["outbound"] == before["outbound"] + 1


def test_signed_callbacks_with_unwritable_values_do_not_stall_the_status_writer(engine: LiveEngine) -> None:
    reply = engine.send(api_post("send_message", {"api_key": engine.key, "phone_number": "2125550100",
                                                          "body": "hi"}))
    (mid,) = (int(i) for i in reply.json()["message_ids"].split(","))
    provider = str(engine.provider_id)

    def callback(provider_id: str, message_id: str, fields: dict[str, str]) -> Reply:
        target = engine.status_url(provider_id, message_id)
        return engine.send(Request("webhook", "POST", target, urlencode(fields).encode(), (
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", engine.signed(target, fields)))))

    with fault_log() as faults:
        # Ids no row can have: 404 (they used to reach the batch and fail it, again and again).
        for provider_id, message_id in [(provider, str(MAX_BIGINT + 1)), (provider, "99999999999999999999"),
                                        (str(MAX_BIGINT + 1), str(mid)), (provider, "٣"), (provider, "-1")]:
            assert callback(provider_id, message_id, {"MessageStatus": "sent"}).status == 404
        # Values the columns cannot hold are dropped, the status itself is written. Each answer is 204 -- not the
        # 503 the intake gives when its write is not acknowledged in time -- and comes after the status's commit:
        # the row already shows it (the statuses rise in rank, so each one applies).
        last_rank = -1
        for fields, rises in [({"MessageStatus": "queued", "MessageSid": "S" * 5000}, True),
                              ({"MessageStatus": "sending", "ErrorCode": "99999999999"}, True),
                              ({"MessageStatus": "sent", "ErrorCode": "²"}, True),
                              ({"MessageStatus": "sent", "MessageSid": "SM\x00" + "0" * 32}, False)]:
            assert callback(provider, str(mid), fields).status == 204, fields
            row = engine.fetch("SELECT provider_status, status_rank, error_code, provider_message_id "
                               "FROM engine_outbound WHERE id = $1", mid)[0]
            assert (row["provider_status"], row["error_code"], row["provider_message_id"]) == (
                fields["MessageStatus"], None, None), fields
            assert (row["status_rank"] > last_rank) is rises, (fields, row["status_rank"])
            last_rank = row["status_rank"]
        assert callback(provider, str(mid), {"MessageStatus": " Delivered ", "ErrorCode": "30003",
                                             "MessageSid": "SM" + "a" * 32}).status == 204
    assert not faults, describe(faults)
    assert engine.runtime is not None and engine.runtime.intake is not None
    assert engine.runtime.intake.writer.failures == 0
    row = engine.fetch("SELECT status, provider_status, error_code, provider_message_id FROM engine_outbound "
                       "WHERE id = $1", mid)[0]
    assert dict(row) == {"status": 1, "provider_status": "delivered", "error_code": 30003,
                         "provider_message_id": "SM" + "a" * 32}
