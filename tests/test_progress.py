"""The progress bar of `engine send` and `engine demo`: redrawn on a terminal, a plain line every few seconds (on an
injected clock) and at the end elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from engine.progress import JobProgress, ProgressLine


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=80, color_system=None), out


def test_plain_lines_every_few_seconds_and_the_last_one() -> None:
    console, out = _console(terminal=False)
    now = [0.0]
    with JobProgress(1000, "job 7", console=console, clock=lambda: now[0], every=5.0) as bar:
        for t, final in ((0.0, 0), (1.0, 100), (4.9, 400), (5.0, 500), (9.0, 900), (9.5, 1000)):
            now[0] = t
            bar.update(ProgressLine(final, 1000 - final, 3, final, 0, 100.0, (1000 - final) / 100))
    lines = out.getvalue().splitlines()
    assert lines == [
        "job 7: 0/1,000 final · queued 1,000 · sent 3 · delivered 0 · failed 0 · 100.0 msg/s · ETA 10s",
        "job 7: 500/1,000 final · queued 500 · sent 3 · delivered 500 · failed 0 · 100.0 msg/s · ETA 5s",
        "job 7: 1,000/1,000 final · queued 0 · sent 3 · delivered 1,000 · failed 0 · 100.0 msg/s · ETA 0s",
    ]


def test_a_paused_job_says_so_and_has_no_eta() -> None:
    console, out = _console(terminal=False)
    with JobProgress(10, "job 8", console=console) as bar:
        bar.update(ProgressLine(4, 6, 0, 4, 0, 0.0, None, "paused"))
    assert out.getvalue() == "job 8 [paused]: 4/10 final · queued 6 · sent 0 · delivered 4 · failed 0 · 0.0 msg/s · " \
                             "ETA -\n"


def test_on_a_terminal_the_bar_is_redrawn_on_two_lines_within_80_columns() -> None:
    console, out = _console(terminal=True)
    with JobProgress(300, "job 9", console=console) as bar:
        bar.update(ProgressLine(120, 170, 10, 118, 2, 52.5, 3.4))
    text = out.getvalue()
    assert "120/300" in text and "52.5 msg/s" in text and "ETA 3s" in text
    assert "queued 170 · sent 10 · delivered 118 · failed 2" in text
    final_frame = text.rsplit("\x1b[2K", 2)[-2:]  # the last frame's two lines, each cleared first
    assert all(len(line.strip("\r\n")) <= 80 for frame in final_frame for line in frame.splitlines())
