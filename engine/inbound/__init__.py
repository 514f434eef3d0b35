"""Carrier -> engine traffic: the status webhook (:mod:`engine.inbound.status`), and next the MO webhook.

Everything a carrier sends us arrives here, is checked (signatures, ids, values the columns can hold)
and is written through the store. This package never imports :mod:`engine.dispatch`: the status
vocabulary both directions share lives in :mod:`engine.statuses`.
"""
