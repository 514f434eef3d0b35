"""Keep secrets out of logs: API keys and tokens in logged URLs or messages are masked.

aiohttp logs the start of a malformed request line (which may carry `api_key=…`) at ERROR; this
filter on every root handler masks such values whatever logger they come from.
"""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"(?i)\b(api_key|auth_token|authtoken|password|secret)=([^&\s'\"]+)")


def redact(text: str) -> str:
    """*text* with the value of every `name=value` secret replaced by `***`."""
    return _SECRET.sub(r"\1=***", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's final message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of *logger* (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
