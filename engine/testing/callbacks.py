"""The status-callback sender: posts each accepted message's statuses to its StatusCallback, signed like Twilio.

A fixed pool of workers drains one queue, so ``concurrency`` bounds the callbacks in flight. Each callback
is signed with the account's token (``X-Twilio-Signature``) and retried on connection errors and 5xx
with a short backoff; a 4xx is final, as with Twilio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final, Literal
from urllib.parse import urlencode

import aiohttp

from engine.providers.twilio import twilio_signature
from engine.providers.twilio_wire import API_VERSION, FORM_CONTENT_TYPE
from engine.testing.records import AcceptedRecord, Ledger

__all__ = ["CALLBACK_ATTEMPTS", "CALLBACK_BACKOFF", "CALLBACK_TIMEOUT", "CallbackMode", "CallbackSender"]

log = logging.getLogger(__name__)

# "all": "sent" then the final status; "final": the final status only; "none": no callbacks.
CallbackMode = Literal["all", "final", "none"]
CALLBACK_ATTEMPTS: Final = 4
CALLBACK_BACKOFF: Final = 0.05  # seconds, doubled per attempt: 0.05, 0.1, 0.2
CALLBACK_TIMEOUT: Final = 10.0


class CallbackSender:
    """Delivers status callbacks ``latency`` seconds after accept, ``concurrency`` at a time."""

    def __init__(
        self, ledger: Ledger, tokens: Mapping[str, str], *, mode: CallbackMode, latency: float, concurrency: int
    ) -> None:
        self.ledger = ledger
        self.tokens = tokens
        self.mode: CallbackMode = mode
        self.latency = latency
        self.concurrency = concurrency
        self._queue: asyncio.Queue[tuple[float, AcceptedRecord, str]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def schedule(self, record: AcceptedRecord, account: str) -> None:
        """Queue this message's callbacks (none when it has no StatusCallback or the mode is "none")."""
        if record.status_callback is not None and self.mode != "none":
            self._queue.put_nowait((asyncio.get_running_loop().time() + self.latency, record, account))

    def start(self) -> None:
        """Open the HTTP session and start the workers (on the running loop)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT),
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"fake-carrier-callbacks-{i}") for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Stop the workers, close the session and drop callbacks not yet delivered; safe to call twice."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every callback scheduled so far has been delivered (or given up on)."""
        await self._queue.join()

    async def _work(self) -> None:
        """One of ``concurrency`` workers: the worker count is the concurrency bound."""
        loop = asyncio.get_running_loop()
        while True:
            due, record, account = await self._queue.get()
            try:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._deliver(record, account)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the worker alive; a lost callback is counted, not fatal
                self.ledger.callbacks_failed += 1
                log.exception("fake carrier: status callback for %s crashed", record.sid)
            finally:
                self._queue.task_done()

    async def _deliver(self, record: AcceptedRecord, account: str) -> None:
        """Post this message's statuses in order: "sent" (mode all) then its final status."""
        if self.mode == "all":
            await self._post_status(record, account, "sent", None)
        await self._post_status(record, account, record.final_status, record.error_code)

    async def _post_status(self, record: AcceptedRecord, account: str, status: str, error: int | None) -> bool:
        """One signed status callback, retried on connection errors and 5xx with a short backoff."""
        session = self._session
        url = record.status_callback
        assert session is not None and url is not None
        params = {
            "MessageSid": record.sid,
            "SmsSid": record.sid,
            "AccountSid": account,
            "To": record.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if record.from_ is not None:
            params["From"] = record.from_
        if record.messaging_service_sid is not None:
            params["MessagingServiceSid"] = record.messaging_service_sid
        if error is not None:
            params["ErrorCode"] = str(error)
        headers = {
            "Content-Type": FORM_CONTENT_TYPE,
            "X-Twilio-Signature": twilio_signature(self.tokens[account], url, params),
            "I-Twilio-Idempotency-Token": f"{record.sid}-{status}",
            "User-Agent": "TwilioProxy/1.1",
        }
        data = urlencode(params).encode()
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                async with session.post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    if resp.status < 400:
                        self.ledger.callbacks_sent += 1
                        return True
                    if resp.status < 500:  # the receiver refused it; Twilio does not retry 4xx
                        break
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if attempt + 1 < CALLBACK_ATTEMPTS:
                await asyncio.sleep(CALLBACK_BACKOFF * (2**attempt))
        self.ledger.callbacks_failed += 1
        return False
