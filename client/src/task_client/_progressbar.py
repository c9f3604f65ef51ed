"""How `task-client call` shows progress: click's progress bar on a terminal, one line per report otherwise."""

from __future__ import annotations

import itertools
from typing import Any, TextIO

import click

from ._progress import Progress


def progress_line(progress: Progress) -> str:
    """One report as plain text, e.g. `progress 3/10 (30%) counted to 3` (for logs and pipes)."""
    total = "?" if progress.total is None else _number(progress.total)
    text = f"progress {_number(progress.done)}/{total}"
    if progress.fraction is not None:
        text += f" ({progress.fraction:.0%})"
    return f"{text} {progress.message}".rstrip()


class ProgressDisplay:
    """Writes each new report to `stream`: a bar redrawn in place on a terminal, appended lines otherwise."""

    def __init__(self, stream: TextIO, *, terminal: bool) -> None:
        self._stream = stream
        self._terminal = terminal
        self._last: Progress | None = None
        self._bar: Any = None  # click's ProgressBar, opened at the first report

    def show(self, progress: Progress | None) -> None:
        if progress is None or progress == self._last:
            return
        self._last = progress
        if not self._terminal:
            self._stream.write(progress_line(progress) + "\n")
            self._stream.flush()
            return
        if self._bar is None:
            # The bar is driven by reports, not by iterating: an endless iterable lets the total be unknown.
            self._bar = click.progressbar(
                itertools.repeat(None),
                file=self._stream,
                bar_template="[%(bar)s] %(info)s",
                fill_char="#",
                empty_char=".",
                show_eta=False,
                show_pos=True,
                item_show_func=lambda message: message,
            )
        bar = self._bar
        bar.length = None if progress.total is None else _number(progress.total)
        bar.show_percent = progress.total is not None
        bar.pos = _number(progress.done)
        bar.finished = progress.fraction == 1.0
        bar.current_item = progress.message
        bar.render_progress()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()


def _number(value: float) -> Any:
    """3.0 shows as 3, 2.5 as 2.5."""
    return int(value) if float(value).is_integer() else value
