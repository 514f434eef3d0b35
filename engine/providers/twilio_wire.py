"""The Twilio REST wire basics that sending (:mod:`engine.providers.twilio`) and the account's own calls
(:mod:`engine.providers.twilio_numbers`) share: the API version, the form content type, and how an error body reads.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = ["API_VERSION", "FORM_CONTENT_TYPE", "error_fields", "json_or_none"]

API_VERSION: Final = "2010-04-01"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

# Keep error text from a misbehaving proxy short in logs and results.
_MAX_ERROR_TEXT: Final = 200


def json_or_none(raw: bytes) -> Any:
    """The reply's JSON document, or None when it is not JSON (a proxy's HTML error page, an empty body)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def error_fields(raw: bytes, status: int) -> tuple[int | None, str]:
    """Twilio's error body is {"code", "message", "more_info", "status"}; anything else becomes text."""
    doc = json_or_none(raw)
    if isinstance(doc, dict):
        code = doc.get("code")
        message = doc.get("message")
        error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if isinstance(code, str) and code.isdigit():
            error_code = int(code)
        if isinstance(message, str) and message:
            return error_code, message
        return error_code, f"HTTP {status}"
    text = raw[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return None, f"HTTP {status}: {text}" if text else f"HTTP {status}"
