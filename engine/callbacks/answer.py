"""A gateway's answer to an `incoming_message` callback, as the Carousel seed defines it (pure).

A plain-text body is the reply to send; a JSON object may carry `body` (the reply), `close_session` (close the
phone's session with the app) and `reprocess` (a text to handle as a new MO from the same phone). An empty
answer, or JSON with none of these, means "nothing to do".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

__all__ = ["MAX_ANSWER_BYTES", "ParsedAnswer", "parse_answer"]

MAX_ANSWER_BYTES: Final = 8192  # read no more of a gateway's answer (a reply is at most 1,600 characters)
_TRUE: Final = frozenset({"1", "t", "true", "y", "yes"})


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    body: str | None = None
    close_session: bool = False
    reprocess: str | None = None


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in _TRUE


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        return value.strip()
    return None


def parse_answer(raw: bytes, content_type: str = "") -> ParsedAnswer | None:
    """The answer in *raw* (None: nothing to do). JSON is recognised by its content type or by its opening brace."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    if "json" in content_type.lower() or text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            answer = ParsedAnswer(_text(doc.get("body")), _flag(doc.get("close_session")), _text(doc.get("reprocess")))
            return answer if answer != ParsedAnswer() else None
    body = _text(text)
    return ParsedAnswer(body) if body else None
