"""The short terminal summary of a run: stages with time, reports from transforms, checks, run dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red"}


def print_outcome(state: Any, run_dir: Path, console: Console | None = None) -> None:
    console = console or Console(width=None if Console().is_terminal else 120)
    console.rule(f"fxflow · recipe [bold]{state.recipe}[/]")
    if state.stages:
        stages = Table(title="stages", title_justify="left")
        stages.add_column("stage")
        stages.add_column("seconds", justify="right")
        for name in state.stages:
            key = name if name in ("build", "trace") else f"transform.{name}"
            stages.add_row(name, f"{state.timings.get(key, 0.0):.4f}")
        console.print(stages)
    for renderable in state.report:
        console.print(renderable)
    if state.checks:
        checks = Table(title="checks", title_justify="left")
        for column in ("check", "result", "detail"):
            checks.add_column(column, overflow="fold")
        for check in state.checks:
            mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
            detail = check.get("detail", "")
            if "reference" in check:
                detail = f"vs {check['reference']}, {check['input_sets']} input sets, max |diff| {check['max_abs_diff']:.3g}: {detail}"
            checks.add_row(check["name"], mark, detail)
        console.print(checks)
    if state.error:
        console.print(f"[bold red]error[/] at {state.error['stage']}: {state.error['message']}", highlight=False)
    console.print(f"status: [{_STYLE.get(state.status, 'bold')}]{state.status}[/]   record: {run_dir}", highlight=False)
