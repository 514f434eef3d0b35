"""The injected time source: a callable returning seconds (time.monotonic or time.time in production).

Code that decides anything by time takes a `Clock`, so tests drive it exactly and never sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
