"""The fake carrier: a real aiohttp server speaking Twilio's REST wire format, for tests, the demo and benchmarks.

Everything that sends through it uses the real :class:`~engine.providers.twilio.TwilioClient`, so the wire
contract is exercised end to end. One module per responsibility:

- :mod:`~engine.testing.carrier` -- :class:`FakeCarrier` (lifecycle, public face) and :func:`run_fake_carrier`
- :mod:`~engine.testing.messages` -- the Messages API: create, Twilio's validation, outcomes
- :mod:`~engine.testing.accounts` -- accounts and the one authentication middleware
- :mod:`~engine.testing.numbers` -- the number market: search, list, buy, update (SmsUrl), release
- :mod:`~engine.testing.callbacks` -- the signed status-callback sender
- :mod:`~engine.testing.inbound` -- incoming texts: a signed Twilio inbound webhook to a number's SmsUrl
- :mod:`~engine.testing.faults` -- injected failures and hangs
- :mod:`~engine.testing.control` -- the ``/_fake/...`` control endpoints
- :mod:`~engine.testing.records` -- accepted messages, counters, and the sliding-window maximum per sender
- :mod:`~engine.testing.wire` -- forms in, JSON and Twilio-shaped errors out
"""

from engine.testing.accounts import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from engine.testing.callbacks import CallbackMode
from engine.testing.carrier import FakeCarrier, run_fake_carrier
from engine.testing.inbound import MoDelivery, NoSmsUrl
from engine.testing.messages import NOT_MOBILE_NUMBER, UNSUBSCRIBED_NUMBER
from engine.testing.numbers import available_numbers
from engine.testing.records import AcceptedRecord, max_per_sender_by_sender, max_per_sender_in_window

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "NOT_MOBILE_NUMBER",
    "UNSUBSCRIBED_NUMBER",
    "AcceptedRecord",
    "CallbackMode",
    "FakeCarrier",
    "MoDelivery",
    "NoSmsUrl",
    "available_numbers",
    "max_per_sender_by_sender",
    "max_per_sender_in_window",
    "run_fake_carrier",
]
