"""How `task-client call` shows progress: a bar on a terminal, one line per report otherwise."""

from __future__ import annotations

from typing import TextIO

from ._progress import Progress


def progress_line(progress: Progress) -> str:
    """One report as plain text, e.g. `progress 3/10 (30%) counted to 3`."""
    total = "?" if progress.total is None else _number(progress.total)
    text = f"progress {_number(progress.done)}/{total}"
    if progress.fraction is not None:
        text += f" ({progress.fraction:.0%})"
    return f"{text} {progress.message}".rstrip()


def progress_bar(progress: Progress, width: int = 30) -> str:
    """One report as a bar, e.g. `[#########.....................]  3/10  30%  counted to 3`."""
    fraction = progress.fraction
    filled = round(width * fraction) if fraction is not None else 0
    total = "?" if progress.total is None else _number(progress.total)
    percent = f"{fraction:4.0%}" if fraction is not None else "  ? "
    return f"[{'#' * filled}{'.' * (width - filled)}] {_number(progress.done)}/{total} {percent}  {progress.message}"


class ProgressDisplay:
    """Writes each new report to `stream`: redrawn in place on a terminal, appended otherwise."""

    def __init__(self, stream: TextIO, *, terminal: bool) -> None:
        self._stream = stream
        self._terminal = terminal
        self._last: Progress | None = None
        self._width = 0

    def show(self, progress: Progress | None) -> None:
        if progress is None or progress == self._last:
            return
        self._last = progress
        if self._terminal:
            text = progress_bar(progress)
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self._stream.write(progress_line(progress) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._terminal and self._last is not None:
            self._stream.write("\n")
            self._stream.flush()


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
