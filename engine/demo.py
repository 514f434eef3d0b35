"""`engine demo`: a library calendar's bulk notification job through a pool of DIDs, end to end — and the
people it texts texting back.

Embedded PostgreSQL (or ENGINE_DSN), a fake carrier in its own process on a free loopback port,
the engine (worker + webhooks) in this process, and the library's own gateway (a tiny web app here that
answers questions); a live progress bar; a summary whose per-DID maximum comes from the carrier's own
record of what it accepted. While the job runs, a few phones text the engine through the carrier: one
asks a question (the app answers), one texts HELP, one texts STOP (it gets one confirmation and nothing
else from then on) and later START.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from engine.app import Runtime, run_engine
from engine.config import Settings
from engine.console.passwords import hash_password
from engine.errors import InvalidInput
from engine.progress import JobProgress, ProgressLine
from engine.providers.factory import carrier_client
from engine.providers.twilio import inbound_webhook_url
from engine.store import admin, operators, outbound
from engine.store import inbound as inbound_store
from engine.store.database import Database
from engine.submit import Outgoing, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, max_per_sender_by_sender

DEMO_APP = "demo"
DEMO_OPERATOR = "demo"
FINAL_STATES = ("delivered", "undelivered", "failed", "suppressed", "canceled", "unknown", "expired")

_EVENTS = [
    "Storytime for Toddlers", "Teen Coding Club", "Author Talk: Local History", "ESL Conversation Circle",
    "Knitting Circle", "Homework Help", "Lego Lab", "Genealogy Basics", "Book Club: Mysteries",
    "Tech Help Drop-In", "Resume Workshop", "Family Movie Night",
]
_BRANCHES = ["Main", "Eastside", "Riverside", "Northgate", "Oak Park"]
_TEMPLATES = [
    "Hi {name}, you're registered for {event} at {branch} Library on {day} at {time}. Reply STOP to opt out.",
    "Reminder: {event} starts tomorrow at {time}, {branch} Library. See you there, {name}!",
    "{name}, a spot opened up for {event} on {day}. You're in! {branch} Library. Reply STOP to opt out.",
    "Change of room: {event} on {day} at {time} moves to the Community Room, {branch} Library.",
    "Thanks for attending {event}, {name}! Tell us how it went: lib.example/s/{code}",
]
_NAMES = ["Alex", "Sam", "Maria", "Jordan", "Priya", "Chen", "Fatima", "Lucas", "Ava", "Noah", "Zoe", "Omar"]
_AREAS = ["212", "312", "415", "617", "646", "718", "202", "303", "404", "512"]


def _number(rng: random.Random, area: str | None = None) -> str:
    return f"+1{area or rng.choice(_AREAS)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"


def build_job(count: int, seed: int = 7) -> tuple[list[Outgoing], dict[str, int]]:
    """The demo's messages: realistic texts, a few tags, ~1 % exact duplicates, ~1 % 555 test numbers."""
    rng = random.Random(seed)
    out: list[Outgoing] = []
    dupes = tests = 0
    while len(out) < count:
        roll = rng.random()
        if out and roll < 0.01:
            prev = rng.choice(out)
            out.append(Outgoing(prev.recipient, prev.body, prev.tag))
            dupes += 1
            continue
        to = f"+1555{rng.randint(0, 9999999):07d}" if roll < 0.02 else _number(rng)
        tests += roll < 0.02
        body = rng.choice(_TEMPLATES).format(
            name=rng.choice(_NAMES), event=rng.choice(_EVENTS), branch=rng.choice(_BRANCHES),
            day=rng.choice(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
            time=f"{rng.randint(9, 19)}:{rng.choice(['00', '30'])}",
            code=f"{rng.randint(0, 99999):05d}",
        )
        tag = f"event-{rng.randint(1, 5)}" if rng.random() < 0.1 else None
        out.append(Outgoing(to, body, tag))
    return out, {"duplicates": dupes, "test_numbers": tests}


async def _start_carrier(failure_rate: float) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "fake-carrier", "--port", "0", "--latency", "0.2",
        "--failure-rate", str(failure_rate), "--seed", "11",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    text = line.decode().strip()
    if "listening on " not in text:
        proc.kill()
        raise RuntimeError(f"fake carrier did not start: {text!r}")
    return proc, text.rsplit(" ", 1)[1]


class _Library:
    """The library's gateway: answers each incoming_message (the reply goes back through the engine)."""

    def __init__(self) -> None:
        self.heard: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/sms", self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/sms"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.heard.append(form)
        if form.get("type") != "incoming_message":
            return web.Response(text="")
        return web.Response(text="Storytime is every Saturday at 10 at Main Library. See you there!")


# Phones of the job's registrants texting back: (phone index, body), in order per phone.
_MOS = [(0, "When is storytime?"), (1, "HELP"), (2, "STOP"), (2, "START")]


async def _text_back(carrier_url: str, dids: list[str], job: list[Outgoing]) -> list[str]:
    """Some registrants text the engine through the carrier (as phones do); returns their numbers."""
    phones = list(dict.fromkeys(m.recipient for m in job if not m.recipient.startswith("+1555")))[:3]
    async with aiohttp.ClientSession() as session:
        for index, body in _MOS:
            form = {"From": phones[index], "To": dids[index % len(dids)], "Body": body}
            async with session.post(f"{carrier_url}/_fake/inbound", data=form) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"the fake carrier could not deliver an MO: {await resp.text()}")
            await asyncio.sleep(0.3)  # people do not text all at once
    return phones


async def _point_dids(carrier_url: str, base_url: str, provider_id: int, numbers: list[str]) -> None:
    """Buy the demo's DIDs on the carrier with their SmsUrl at the engine (what `engine did add` does)."""
    sms_url = inbound_webhook_url(base_url, provider_id)
    async with aiohttp.ClientSession() as session:
        client = carrier_client(session, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                                base_url=carrier_url)
        await asyncio.gather(*(client.buy_number(n, sms_url=sms_url) for n in numbers))


async def _console_login(pool: Any, base_url: str, settings: Settings) -> None:
    """The demo operator with a new random password (shown once), and where the console is: on stderr, so the
    demo's own output (and --json) stays as it was."""
    password = secrets.token_urlsafe(12)
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        await operators.create_operator(pool, DEMO_OPERATOR, password_hash)
    except InvalidInput:  # from an earlier demo: a new password, its old sessions ended
        await operators.set_password(pool, DEMO_OPERATOR, password_hash)
    print(f"console: {base_url}/console/ (while the demo runs; afterwards `engine run` serves it at "
          f"http://{settings.host}:{settings.port}/console/)\n"
          f"  log in as {DEMO_OPERATOR} / {password}  (shown only now; `engine operator passwd {DEMO_OPERATOR}` "
          "sets another)", file=sys.stderr, flush=True)


def _line(counts: dict[str, int], total: int, started: float, capacity_per_s: float) -> ProgressLine:
    """The demo job's progress: final of total, queued, at the carrier, delivered, failed, rate, ETA (at the
    pool's capacity)."""
    queued = counts.get("queued", 0) + counts.get("claimed", 0)
    handed = total - queued - counts.get("sending", 0)
    elapsed = time.monotonic() - started
    return ProgressLine(
        final=sum(counts.get(s, 0) for s in FINAL_STATES), queued=queued, sent=counts.get("sent", 0),
        delivered=counts.get("delivered", 0),
        failed=counts.get("failed", 0) + counts.get("undelivered", 0) + counts.get("unknown", 0),
        rate=handed / elapsed if elapsed > 0 else 0.0, eta=max(0.0, (total - handed) / capacity_per_s),
    )


async def run_demo(
    settings: Settings, *, messages: int, dids: int, limit_per_min: int, failure_rate: float, as_json: bool
) -> int:
    """Run the whole demo; prints the summary (or one JSON object with --json). Returns an exit code."""
    if messages < 1 or dids < 1 or limit_per_min < 1:
        print("error: --messages, --dids and --limit-per-min must be >= 1", file=sys.stderr)
        return 2
    db = await Database.open(settings, max_size=12)
    carrier, carrier_url = await _start_carrier(failure_rate)
    library = _Library()
    stop = asyncio.Event()
    engine_task: asyncio.Task[None] | None = None
    try:
        await admin.delete_app(db.pool, DEMO_APP)  # a fresh demo app each run
        app = await admin.create_app(db.pool, DEMO_APP, await library.start())
        provider_id = await admin.add_provider(db.pool, DEMO_APP, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                               auth_token=DEFAULT_AUTH_TOKEN, base_url=carrier_url)
        rng = random.Random(3)
        numbers = sorted({_number(rng, "646") for _ in range(dids * 3)})[:dids]
        await admin.add_dids(db.pool, DEMO_APP, numbers, limit_per_min=limit_per_min)
        job, planted = build_job(messages)

        ready = asyncio.Event()
        runtimes: list[Runtime] = []

        def on_ready(runtime: Runtime) -> None:
            runtimes.append(runtime)
            ready.set()

        engine_task = asyncio.create_task(
            run_engine(settings.override(port=0), stop, db=db, on_ready=on_ready)
        )
        await asyncio.wait_for(ready.wait(), 30)
        await _console_login(db.pool, runtimes[0].base_url or "", settings)
        await _point_dids(carrier_url, runtimes[0].base_url or "", provider_id, numbers)
        started = time.monotonic()
        for i in range(0, len(job), 5000):
            await submit_many(db.pool, DEMO_APP, job[i : i + 5000])
        texting = asyncio.create_task(_text_back(carrier_url, numbers, job))
        capacity = dids * limit_per_min / 60.0
        with JobProgress(messages, f"demo: {messages:,} messages") as bar:
            while True:
                counts = await outbound.count_by_state(db.pool, app.app_id, "message")  # the job
                done = sum(counts.get(s, 0) for s in FINAL_STATES)
                bar.update(_line(counts, messages, started, capacity))
                if done >= messages and texting.done() and await inbound_store.inbound_settled(db.pool):
                    break
                if engine_task.done():
                    engine_task.result()
                    raise RuntimeError("engine stopped unexpectedly")
                await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        phones = texting.result()
        async with aiohttp.ClientSession() as session, session.get(f"{carrier_url}/_fake/messages") as resp:
            records = orjson.loads(await resp.read())
        inbound = await inbound_store.inbound_summary(db.pool, app.app_id)
    finally:
        stop.set()
        if engine_task is not None:
            await asyncio.gather(engine_task, return_exceptions=True)
        carrier.terminate()
        await carrier.wait()
        await library.stop()
        await db.close()
    summary = _summary(counts, records, messages, planted, elapsed)
    summary["inbound"] = {**inbound, "app_heard": sum(1 for f in library.heard if f.get("type") == "incoming_message"),
                          "texts_to_the_phone_that_said_stop": [r["body"] for r in records if r["to"] == phones[2]]}
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        _print_summary(summary)
    return 0 if summary["max_per_did_60s"] <= limit_per_min else 1


def _summary(counts: dict[str, int], records: list[dict[str, Any]], submitted: int,
             planted: dict[str, int], elapsed: float) -> dict[str, Any]:
    from engine.testing import AcceptedRecord

    recs = [AcceptedRecord(t=r["t"], sid=r["sid"], from_=r["from"], to=r["to"], body=r["body"],
                           messaging_service_sid=None, status_callback=None, final_status=r.get("final_status") or "")
            for r in records]
    per_did = max_per_sender_by_sender(recs, 60.0)
    sent = len(recs)
    return {
        "submitted": submitted,
        "delivered": counts.get("delivered", 0),
        "failed": counts.get("failed", 0) + counts.get("undelivered", 0) + counts.get("unknown", 0),
        "suppressed_duplicates": counts.get("suppressed", 0),
        "test_numbers": planted["test_numbers"],
        "sent_to_carrier": sent,
        "by_state": counts,
        "elapsed_s": round(elapsed, 2),
        "messages_per_s": round(submitted / elapsed, 1) if elapsed else 0.0,
        "dids_used": len(per_did),
        "max_per_did_60s": max(per_did.values(), default=0),
    }


def _print_summary(s: dict[str, Any]) -> None:
    print("\nDemo summary")
    for key in ("submitted", "sent_to_carrier", "delivered", "failed", "suppressed_duplicates", "test_numbers",
                "elapsed_s", "messages_per_s", "dids_used", "max_per_did_60s"):
        print(f"  {key:<24} {s[key]}")
    print(f"  {'by_state':<24} {s['by_state']}")
    inbound = s["inbound"]
    print("\nPeople texting back (through the carrier's /_fake/inbound)")
    for key in ("mos", "opt_outs", "opt_ins", "help_answers", "routed_to_app", "app_heard", "app_replies",
                "confirmations"):
        print(f"  {key:<24} {inbound[key]}")
    print("  the phone that texted STOP then START received, in its conversation:")
    for body in inbound["texts_to_the_phone_that_said_stop"]:
        print(f"    - {body}")
