"""What must hold for every fuzzed request: the reply (no 5xx, no injected header, no echoed key), the database
(a failed request changed nothing, a send added exactly its ids) and the log (no server fault)."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from tests.fuzz.live import LiveEngine, Reply, Request
from tests.fuzz.strategies import CARRIER_CALLS, INJECTED, SEND_CALLS

# Loggers whose ERROR records mean a request hit a server fault (a 500 even if nobody could read it).
FAULT_LOGGERS: Final = (
    "engine.api", "engine.inbound", "engine.httpserver", "engine.runtime.batcher", "aiohttp.server", "aiohttp.web",
)
TABLES: Final = (
    "engine_app", "engine_provider", "engine_smsc", "engine_did", "engine_outbound", "engine_tag_did",
    "engine_blacklist", "engine_session", "engine_keyword", "engine_outbox",
)


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    positive_ids: int = 0
    carrier_refusals: int = 0  # documented 422s: the (fake) carrier refused a DID operation


def check_reply(engine: LiveEngine, request: Request, reply: Reply, tally: Tally) -> None:
    tally.statuses[(request.call or request.kind, reply.status)] += 1
    names = {name.lower() for name, _ in reply.headers}
    assert INJECTED.lower() not in names and "set-cookie" not in names, (request, reply.headers)
    if "application/json" in dict(reply.headers).get("Content-Type", ""):
        # Our replies never echo an API key (aiohttp's own 400 for a malformed request line quotes it).
        assert engine.key.encode() not in reply.body, request
    if reply.status == 422 and request.call in CARRIER_CALLS:
        # Documented (README, Errors): the carrier refused what was asked, e.g. a country it does not sell in.
        assert reply.json()["error"].startswith("carrier error:"), reply
        tally.carrier_refusals += 1
        return
    assert reply.status < 500, (request, reply)  # zero 5xx, carrier calls included
    content_type = dict(reply.headers).get("Content-Type", "")
    if request.kind == "api" and request.call is not None and request.method in ("GET", "POST"):
        if not content_type.startswith("application/json"):
            # Only aiohttp's own answer to malformed HTTP (e.g. a request line over 8190 bytes) is not ours.
            assert reply.status == 400, (request, reply)
            return
        doc = reply.json()
        assert isinstance(doc, dict)
        if reply.status >= 400:
            assert isinstance(doc.get("error"), str), doc


def check_writes(
    engine: LiveEngine, request: Request, reply: Reply, before: dict[str, Any], after: dict[str, Any], tally: Tally
) -> None:
    """A request that did not succeed changes nothing; a successful send adds exactly the rows of its ids."""
    if reply.status >= 300 or reply.status == 0:
        assert after == before, (request, reply)
        return
    if after["outbound"] == before["outbound"]:
        new: list[int] = []
    else:
        new = sorted(r["id"] for r in engine.fetch("SELECT id FROM engine_outbound WHERE id <> ALL($1::bigint[])",
                                                    engine.issued))
        engine.issued.extend(new)
    assert after["outbound"] == before["outbound"] + len(new)
    if request.kind == "api" and request.call == "opt_in_request" and reply.body:
        assert [int(reply.json()["message_id"])] == new, (request, reply)  # the texted verification code
    elif request.kind == "api" and request.call in SEND_CALLS and reply.body:
        ids = [int(i) for i in reply.json()["message_ids"].split(",") if i]  # "" when tags= found no subscriber
        assert all(i in (-1, -2, -3) for i in ids if i <= 0), ids
        assert sorted(i for i in ids if i > 0) == new, (request, reply)
    elif request.kind == "api" and request.call in ("send_job", "resend") and reply.body:
        # A job queues its rows (a split message's parts count one each), all of the job; a resend its new message.
        doc = reply.json()
        if request.call == "send_job":
            jobs = {r["job_id"] for r in engine.fetch("SELECT job_id FROM engine_outbound WHERE id = ANY($1::bigint[])",
                                                      new)}
            assert jobs <= {int(doc["job_id"])} and len(new) == doc["messages"], (request, reply)
        else:
            assert int(doc["message_id"]) in new, (request, reply)
    elif request.kind != "raw":  # (a raw request line can be a good send_message call)
        assert not new, (request, reply)
    tally.positive_ids += len(new)


@contextlib.contextmanager
def fault_log() -> Iterator[list[logging.LogRecord]]:
    """ERROR records of the server-side loggers while the block runs (from any thread)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # Malformed HTTP and undecodable bodies are client faults: counted and logged at WARNING
            # (engine.httpserver.bad_requests), so any ERROR here is a server fault.
            if record.levelno >= logging.ERROR and record.name.startswith(FAULT_LOGGERS):
                records.append(record)

    handler = Keep(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


def describe(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name}: {r.getMessage()} {r.exc_info[1] if r.exc_info else ''!r}" for r in records[:5])
