"""What the engine's HTTP server needs beyond routing, shared by the API (:mod:`engine.api`) and the
carrier webhooks (:mod:`engine.inbound`): reading a request's form safely (:mod:`.forms`) and keeping
aiohttp's reports of malformed requests out of the error log (:mod:`.bad_requests`).
"""
