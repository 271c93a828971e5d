"""What the user sees while runs execute: plain lines when stderr is not a terminal (a log
file, a pipe, a batch job), and log lines without a source-file tag."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from xlrun.execute import progress as progress_mod
from xlrun.execute.progress import RichProgress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=120, log_path=False,
                   color_system=None), buf


def test_not_a_terminal_prints_plain_progress_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(0, 1000, 4))  # 4 s per call to the clock
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: next(clock))
    console, buf = _console(terminal=False)
    with RichProgress(console) as p:
        assert p.plain
        p.log("run 1: resumed from the checkpoint at step 100")
        with p.task("run 1: training", 200) as bar:
            for step in range(1, 201, 20):
                bar.update(step)
            bar.update(200)
        with p.task("run 1: nothing to do", 5):
            pass

    lines = buf.getvalue().splitlines()
    assert lines[0].endswith("] run 1: resumed from the checkpoint at step 100")
    training = [line for line in lines if "run 1: training" in line]
    # at most one line per PLAIN_INTERVAL_S (10 s: every third update here), and the end
    assert 2 <= len(training) <= 6, lines
    assert re.search(r"run 1: training: 200/200 \(100%\) 0:\d\d:\d\d$", training[-1])
    assert not any("nothing to do" in line for line in lines)  # an empty bar says nothing

    assert all(re.match(r"^\[\d\d:\d\d:\d\d\] ", line) for line in lines)


def test_the_last_position_is_written_once() -> None:
    lines: list[str] = []
    bar = progress_mod._PlainTask(lines.append, "runs", 2, interval_s=0.0)
    bar.advance(1)
    bar.advance(1)
    bar.finish()
    assert [line.split(" 0:")[0] for line in lines] == ["runs: 1/2 (50%)", "runs: 2/2 (100%)"]


def test_terminal_log_lines_end_with_the_message() -> None:
    console, buf = _console(terminal=True)
    with RichProgress(console) as p:
        assert not p.plain
        p.log("run 3: done in 12.0s")
    out = buf.getvalue()
    assert "run 3: done in 12.0s" in out
    assert "progress.py" not in out


def test_default_console_has_no_source_tag() -> None:
    p = RichProgress()
    buf = io.StringIO()
    p.console.file = buf
    p.console.log("hello")
    assert "progress.py" not in buf.getvalue() and "hello" in buf.getvalue()
