"""Hostile input against the real engine on loopback: fuzzed Carousel API calls and carrier webhooks.

One engine (the aiohttp app :func:`engine.app.run_engine` builds: Carousel API, Twilio status webhooks,
/healthz; no dispatch worker, so nothing but the requests changes the queue) runs in its own thread and
event loop on a fresh database, with an application whose carrier account is the loopback fake carrier
(``live``). Hypothesis draws the requests (``strategies``): documented and made-up call names, good, wrong and
hostile API keys, parameter maps for every documented call (unicode, NULs, huge lengths, SQL, CRLF, numbers as
strings, JSON garbage, junk lists, booleans and dates), as query strings, form bodies, multipart bodies, wrong
content types, binary and wrongly compressed bodies, raw malformed HTTP; and status callbacks with good, forged
and malformed signatures, ids and fields.

Checked for every reply (``checks``): no 5xx (a DID call the carrier turns down, e.g. a country it sells no
numbers in, is the documented 422), no injected header, the API key never echoed, no server fault logged.
Checked against the database after every reply: a request that did not succeed changed nothing at all, and a
successful send added exactly the rows whose (positive) ids it returned. Regression tests pin the inputs the
fuzzing found answered with 500 or stalling the status writer.
"""
