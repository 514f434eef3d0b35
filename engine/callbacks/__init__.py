"""Callbacks to applications: events written to a durable outbox, then POSTed (signed) to gateway URLs.

`events` builds the form an application receives, `signing` signs and verifies it (pure), `outbox`
delivers pending events with retries, per-application concurrency limits and dead letters.
"""
