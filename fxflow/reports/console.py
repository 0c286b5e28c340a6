"""The short terminal summary of a run: stages with time, stage reports, checks, the record's place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxflow.checks.result import Check

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red", "skipped": "bold yellow"}


def print_outcome(state: Any, run_dir: Path, console: Console | None = None) -> None:
    console = console or Console(width=None if Console().is_terminal else 120)
    console.rule(f"fxflow · recipe [bold]{escape(state.recipe)}[/]")
    if state.stages:
        stages = Table(title="stages", title_justify="left")
        stages.add_column("stage")
        stages.add_column("seconds", justify="right")
        for name in state.stages:
            key = name if name == "trace" else f"transform.{name}"
            stages.add_row(escape(name), f"{state.timings.get(key, 0.0):.4f}")
        console.print(stages)
    for renderable in state.report:
        console.print(escape(renderable) if isinstance(renderable, str) else renderable, highlight=False)
    if state.checks:
        checks = Table(title="checks", title_justify="left")
        for column in ("check", "result", "detail"):
            checks.add_column(column, overflow="fold")
        for check in state.checks:
            mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
            checks.add_row(escape(check.name), mark, escape(describe(check)))
        console.print(checks)
    for note in state.notes:
        console.print(escape(note), highlight=False)
    if state.skipped:
        console.print(f"[bold yellow]skipped[/] {escape(state.skipped)}", highlight=False)
    if state.error:
        console.print(f"[bold red]error[/] at {escape(state.error['stage'])}: {escape(state.error['message'])}",
                      highlight=False)
    console.print(f"status: [{_STYLE.get(state.status, 'bold')}]{state.status}[/]   record: {escape(str(run_dir))}",
                  highlight=False)


def describe(check: Check) -> str:
    """A check in plain words."""
    if check.kind == "equivalence":
        figures = f"on {check.extra['input_sets']} input sets, largest difference {check.extra['max_abs_diff']:.3g}"
        if check.passed:
            return f"{check.detail} the {check.reference} {figures}"
        return f"differs from the {check.reference} {figures}: {check.detail}"
    return check.detail
