"""The live progress bar of a bulk send (`engine send`, `engine demo`), drawn with rich on stderr.

It shows how many messages are final out of the total, and how many are queued, at the carrier (sent),
delivered and failed, the rate and the ETA. On a terminal it redraws in place; on anything else (a log file,
a pipe) it prints one plain line every few seconds and a last one at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["JobProgress", "ProgressLine", "format_eta"]

PLAIN_EVERY: Final = 5.0  # seconds between two plain lines when stderr is not a terminal


@dataclass(frozen=True, slots=True)
class ProgressLine:
    """One reading of a send's progress."""

    final: int  # messages in a final state
    queued: int  # not yet sent
    sent: int  # at the carrier, no final report yet
    delivered: int
    failed: int
    rate: float  # messages handed to the carrier per second
    eta: float | None  # seconds until the last one is handed to the carrier (None: cannot say, e.g. paused)
    state: str = "running"


def format_eta(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h01m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _fields(line: ProgressLine) -> dict[str, Any]:
    return {"queued": f"{line.queued:,}", "sent": f"{line.sent:,}", "delivered": f"{line.delivered:,}",
            "failed": f"{line.failed:,}", "rate": f"{line.rate:,.1f}", "eta": format_eta(line.eta),
            "state": "" if line.state == "running" else f" [{line.state}]"}


class _TwoLines(Progress):
    """The bar, the count, rate and ETA on one line, what the messages are doing on the next (fits 80 columns)."""

    def __init__(self, *columns: ProgressColumn, console: Console, refresh_per_second: float) -> None:
        self.counts = Text()  # before the Live display (started with Progress) first asks for it
        super().__init__(*columns, console=console, refresh_per_second=refresh_per_second)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self.counts


class JobProgress:
    """``with JobProgress(total, "job 12") as bar: bar.update(line)`` draws the bar until the block ends."""

    def __init__(self, total: int, description: str, *, console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic, every: float = PLAIN_EVERY) -> None:
        self.total = total
        self.description = description
        self.console = console or Console(stderr=True)
        self.clock = clock
        self.every = every
        self.last: ProgressLine | None = None
        self._printed_at: float | None = None
        self._printed: ProgressLine | None = None
        self._progress: _TwoLines | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> JobProgress:
        if self.console.is_terminal:
            self._progress = _TwoLines(
                TextColumn("[bold]{task.description}{task.fields[state]}"), BarColumn(bar_width=24),
                MofNCompleteColumn(), TextColumn("final · {task.fields[rate]} msg/s · ETA {task.fields[eta]}"),
                TimeElapsedColumn(), console=self.console, refresh_per_second=4,
            )
            self._progress.start()
            empty = ProgressLine(0, self.total, 0, 0, 0, 0.0, None)
            self._task = self._progress.add_task(self.description, total=self.total, **_fields(empty))
        return self

    def update(self, line: ProgressLine) -> None:
        self.last = line
        if self._progress is not None and self._task is not None:
            f = _fields(line)
            self._progress.counts = Text.from_markup(
                f"  queued {f['queued']} · sent {f['sent']} · [green]delivered {f['delivered']}[/] · "
                f"[red]failed {f['failed']}[/]")
            self._progress.update(self._task, completed=line.final, **f)
            return
        now = self.clock()
        if self._printed_at is None or now - self._printed_at >= self.every:
            self._print(line)
            self._printed_at = now
            self._printed = line

    def _print(self, line: ProgressLine) -> None:
        f = _fields(line)
        self.console.print(
            f"{self.description}{f['state']}: {line.final:,}/{self.total:,} final · queued {f['queued']} · "
            f"sent {f['sent']} · delivered {f['delivered']} · failed {f['failed']} · {f['rate']} msg/s · "
            f"ETA {f['eta']}", markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self.last is not None and self.last is not self._printed:
            self._print(self.last)  # the last reading, whenever the one before was printed
