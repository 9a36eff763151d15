"""Progress of long steps (tilts, windows, refinement iterations), with an ETA.

A :class:`Progress` counts done items of a step. It logs a line with the elapsed time
and an estimate of the time left at most every ``every`` seconds and when the step
ends, so a log file (a SLURM job's, a pipe) gets a few lines and no control
characters. A terminal can show a bar instead: the command line registers a *display*
(:func:`add_display`, :class:`TerminalBar` on an interactive stderr) that is handed
every change, and then only the final line of each step is logged.

The cores never draw anything themselves: they call :meth:`Progress.advance`, and
whatever the entry point registered shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress", "ProgressState", "TerminalBar", "add_display", "remove_display"]

log = logging.getLogger(__name__)

#: The displays the entry point registered (the command line's terminal bar).
_DISPLAYS: list[Callable[[ProgressState], None]] = []


@dataclass(frozen=True)
class ProgressState:
    """Where a step stands.

    Attributes
    ----------
    label : str
        What is counted, e.g. ``"reconstruct (genfire): windows"``.
    done, total : int
        Items done and in all.
    elapsed : float
        Seconds since the step started [s].
    unit : str
        Name of an item (``"tasks"``, ``"iterations"``).
    finished : bool
        Whether the step has ended (possibly before ``total``: a converged fit).
    """

    label: str
    done: int
    total: int
    elapsed: float
    unit: str = "tasks"
    finished: bool = False

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far [s]; None before the first item."""
        if self.done <= 0 or self.total <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    def text(self) -> str:
        """``label: done/total unit, elapsed, ETA``, as logged."""
        eta = "" if self.finished or self.eta is None else f", ETA {_duration(self.eta)}"
        return (
            f"{self.label}: {self.done}/{self.total} {self.unit} ({_duration(self.elapsed)}{eta})"
        )


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def add_display(display: Callable[[ProgressState], None]) -> None:
    """Hand every progress change to ``display`` (e.g. a :class:`TerminalBar`)."""
    _DISPLAYS.append(display)


def remove_display(display: Callable[[ProgressState], None]) -> None:
    """Stop handing progress to ``display``."""
    if display in _DISPLAYS:
        _DISPLAYS.remove(display)


class Progress:
    """Counts the done items of one step and reports them.

    Parameters
    ----------
    label : str
        Name of the step in the lines and the bar.
    total : int
        Items in all (an upper bound where a step may stop early).
    unit : str, default "tasks"
    every : float, default 30
        Least time between two logged lines [s] (without a display).
    level : int, default logging.INFO
        Level of the lines (DEBUG for steps inside an iteration).
    log_end : bool, default True
        Log a line when the step ends (False where the caller logs its own summary).

    Examples
    --------
    >>> progress = Progress("windows", 4)
    >>> for _ in range(4):
    ...     progress.advance()
    >>> progress.state().done
    4
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "tasks",
        every: float = 30.0,
        level: int = logging.INFO,
        log_end: bool = True,
    ) -> None:
        self.label, self.total, self.unit = label, int(total), unit
        self.every, self.level, self.log_end = float(every), level, log_end
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._finished = False

    def state(self) -> ProgressState:
        """The step's state now."""
        return ProgressState(
            self.label,
            self.done,
            self.total,
            time.perf_counter() - self.start,
            self.unit,
            self._finished,
        )

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done; the last one ends the step."""
        self.done += n
        if self.done >= self.total:
            self.finish()
            return
        state = self.state()
        for display in _DISPLAYS:
            display(state)
        now = time.perf_counter()
        if not _DISPLAYS and now - self._last >= self.every:
            self._last = now
            log.log(self.level, "%s", state.text())

    def finish(self) -> None:
        """End the step (also when it stops before ``total``): one final line."""
        if self._finished:
            return
        self._finished = True
        state = self.state()
        for display in _DISPLAYS:
            display(state)
        if self.total > 0 and self.log_end:
            log.log(self.level, "%s", state.text())


class TerminalBar:
    """A display that redraws one line of a terminal: ``label [####----] 5/16, ETA``.

    Parameters
    ----------
    stream : text stream
        An interactive stream (the command line passes ``sys.stderr`` when it is a tty).
    width : int, default 24
        Characters of the bar.
    interval : float, default 0.2
        Least time between two redraws [s].
    """

    def __init__(self, stream: TextIO, *, width: int = 24, interval: float = 0.2) -> None:
        self.stream, self.width, self.interval = stream, width, interval
        self._shown = False
        self._last = 0.0

    def __call__(self, state: ProgressState) -> None:
        now = time.perf_counter()
        if state.finished:
            self.clear()
            return
        if now - self._last < self.interval:
            return
        self._last = now
        filled = int(self.width * state.done / max(state.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r\x1b[K{state.label} [{bar}] {state.text().split(': ', 1)[1]}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Remove the bar (before a log line is written, and at the end of a step)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
