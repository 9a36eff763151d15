"""Progress of long steps: an ETA, a bar on a terminal, a few lines in a log file."""

from __future__ import annotations

import io
import logging

import pytest

from hpcaet.parallel import map_tasks
from hpcaet.parallel.progress import (
    Progress,
    ProgressState,
    TerminalBar,
    add_display,
    remove_display,
)


def test_the_time_left_is_the_rate_so_far_times_the_items_left():
    state = ProgressState("windows", done=4, total=16, elapsed=10.0)
    assert state.eta == pytest.approx(30.0)
    assert state.text() == "windows: 4/16 tasks (10 s, ETA 30 s)"
    assert ProgressState("w", 0, 16, 1.0).eta is None  # nothing done: no estimate
    late = ProgressState("refine", 3, 150, 200.0, unit="iterations", finished=True)
    assert late.text() == "refine: 3/150 iterations (3 min 20 s)"  # stopped early: no ETA


def test_a_display_sees_every_step_and_the_end(caplog):
    seen: list[ProgressState] = []
    add_display(seen.append)
    try:
        with caplog.at_level(logging.INFO, logger="hpcaet"):
            result = map_tasks(lambda x: x * x, [(k,) for k in range(5)], keys=list("abcde"))
    finally:
        remove_display(seen.append)
    assert result == [0, 1, 4, 9, 16]
    assert [s.done for s in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].finished and not seen[-2].finished
    # with a display (the bar) only the final line is logged
    assert [r.getMessage() for r in caplog.records if "5/5" in r.getMessage()]
    assert not [r for r in caplog.records if "3/5" in r.getMessage()]


def test_without_a_terminal_lines_come_at_most_every_interval(caplog):
    with caplog.at_level(logging.INFO, logger="hpcaet"):
        progress = Progress("tilts", 100, every=3600.0)
        for _ in range(100):
            progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [lines[-1]] and lines[-1].startswith("tilts: 100/100 tasks")


def test_the_terminal_bar_redraws_one_line_and_clears_it():
    stream = io.StringIO()
    bar = TerminalBar(stream, width=10, interval=0.0)
    bar(ProgressState("windows", 5, 10, 5.0))
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K") and "windows [#####-----] 5/10 tasks (5 s, ETA 5 s)" in text
    bar(ProgressState("windows", 10, 10, 9.0, finished=True))
    assert stream.getvalue().endswith("\r\x1b[K")  # the line is left empty for the log


def test_the_command_line_shows_a_bar_on_a_terminal_only(monkeypatch):
    from hpcaet import cli
    from hpcaet.parallel import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(cli.sys, "stderr", io.StringIO())
    assert cli._setup_logging(0) is None  # a pipe or a log file: lines, no bar
    monkeypatch.setattr(cli.sys, "stderr", Terminal())
    assert cli._setup_logging(0, quiet=True) is None  # -q: no bar either
    bar = cli._setup_logging(0)
    try:
        assert isinstance(bar, TerminalBar) and bar in progress._DISPLAYS
    finally:
        remove_display(bar)
        for handler in logging.getLogger().handlers:
            handler.filters = [f for f in handler.filters if getattr(f, "bar", None) is not bar]
