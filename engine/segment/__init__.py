"""Encoding detection, segment counting and splitting (pure: no I/O, no asyncio).

`analyze` says how a body is billed (GSM-7 or UCS-2, segments, units per segment), optionally
after smart encoding; `split_message` cuts it into standalone `(i/n) ` parts for carriers that
take single SMS only; `has_unicode` lets callers refuse UCS-2 for destinations without it.
"""

from __future__ import annotations

from engine.segment.analyze import SegmentInfo, analyze, has_unicode
from engine.segment.gsm import (
    GSM7,
    GSM7_BASIC,
    GSM7_CHARSET,
    GSM7_CONCAT,
    GSM7_EXTENSION,
    GSM7_SINGLE,
    UCS2,
    UCS2_CONCAT,
    UCS2_SINGLE,
    Encoding,
    is_gsm7,
    non_gsm7_characters,
)
from engine.segment.smart import SMART_MAP, Replacement, smart_replace
from engine.segment.split import SPLIT_MODES, SplitMode, split_message

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_CHARSET",
    "GSM7_CONCAT",
    "GSM7_EXTENSION",
    "GSM7_SINGLE",
    "SMART_MAP",
    "SPLIT_MODES",
    "UCS2",
    "UCS2_CONCAT",
    "UCS2_SINGLE",
    "Encoding",
    "Replacement",
    "SegmentInfo",
    "SplitMode",
    "analyze",
    "has_unicode",
    "is_gsm7",
    "non_gsm7_characters",
    "smart_replace",
    "split_message",
]
