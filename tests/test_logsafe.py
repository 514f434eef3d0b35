"""Secrets never reach log output."""

from __future__ import annotations

import io
import logging

import pytest

from engine.logsafe import RedactSecrets, redact


def test_redact_masks_values_of_secret_parameters() -> None:
    assert redact("GET /api/send_message?api_key=abc123&body=hi") == "GET /api/send_message?api_key=***&body=hi"
    assert redact("auth_token=XYZ password=p w") == "auth_token=*** password=*** w"
    assert redact("nothing to hide") == "nothing to hide"


def test_filter_rewrites_records_from_any_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    log = logging.getLogger("aiohttp.server.test")
    monkeypatch.setattr(log, "propagate", False)  # only our handler sees it; restored after the test
    log.addHandler(handler)
    try:
        log.error("Bad request line: %s", "/api/x?api_key=SECRETKEY")
    finally:
        log.removeHandler(handler)
    assert "SECRETKEY" not in stream.getvalue() and "api_key=***" in stream.getvalue()
