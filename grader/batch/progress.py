"""Progress of a batch: a rich bar (count, rate, ETA) on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """``bar`` (rich), ``plain`` (one line per graded submission) or ``none``."""

    def __init__(self, total: int, *, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode = mode
        self.total = total
        self.done = 0
        self.graded = 0
        self.started = time.monotonic()
        self.first: float | None = None  #: when the first result came (the rate excludes start-up)
        self._bar: Any = None
        self._task: Any = None
        if mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task("grading", total=total, rate="", last="")
            self._bar.start()

    def _rate(self) -> float:
        if self.first is None or self.graded < 2:
            return 0.0
        elapsed = time.monotonic() - self.first
        return (self.graded - 1) / elapsed if elapsed > 0 else 0.0

    def _eta(self) -> str:
        rate = self._rate()
        if rate <= 0:
            return "?"
        seconds = (self.total - self.done) / rate
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"

    def skipped(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def graded_one(self, student: str, line: str) -> None:
        self.done += 1
        self.graded += 1
        if self.first is None:
            self.first = time.monotonic()
        if self.mode == "plain":
            width = len(str(self.total))
            self.stream.write(
                f"[{self.done:>{width}}/{self.total}] {student}: {line}  "
                f"({self._rate():.1f}/s, ETA {self._eta()})\n"
            )
            self.stream.flush()
        elif self._bar is not None:
            self._bar.update(self._task, advance=1, rate=f"{self._rate():.1f}/s", last=student[:24])

    def message(self, text: str) -> None:
        if self.mode == "none":
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
