"""Long steps show progress on a terminal and nothing anywhere else (fxflow.progress)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from fxflow import progress


def test_a_long_step_shows_its_name_and_count_on_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.05)
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=80)
    with progress.enabled(terminal), progress.stage("transform.catalogue"):
        time.sleep(0.3)
        assert list(progress.steps(range(3), "OpInfo entries")) == [0, 1, 2]
        for _ in progress.steps(range(5), "cases"):
            time.sleep(0.12)
    shown = out.getvalue()
    assert "transform.catalogue" in shown and "cases" in shown and "/5" in shown


def test_nothing_is_drawn_when_the_output_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    out = io.StringIO()
    with progress.enabled(Console(file=out, width=80)), progress.stage("transform.partition"):
        time.sleep(0.1)
        assert list(progress.steps([1, 2], "items")) == [1, 2]
    with progress.stage("trace"):  # not enabled at all: a plain pass-through
        assert list(progress.steps("ab", "letters")) == ["a", "b"]
    assert out.getvalue() == ""
