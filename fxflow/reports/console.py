"""The short terminal summary of a run: stages with time, stage reports, checks in words, the record's place.

Written to read at 80 columns: tables wrap between words (never inside a name), the record's
path is printed on a line of its own that never wraps, and an exploration says which override
changed the scenario before the checks show the recipe's figures beside the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxflow.checks.result import Check

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red", "skipped": "bold yellow"}
_WORDS = {"eq": "", "ne": "not ", "lt": "below ", "le": "at most ", "gt": "above ", "ge": "at least ",
          "approx": "about ", "len": "with length ", "contains": "containing "}


def make_console(width: int | None = None) -> Console:
    """A terminal's own width; 100 columns when writing to a file or a pipe."""
    return Console(width=width or (None if Console().is_terminal else 100))


def print_outcome(state: Any, run_dir: Path, console: Console | None = None) -> None:
    console = console or make_console()
    model = f" · model [bold]{escape(state.model)}[/]" if getattr(state, "model", "") else ""
    console.rule(f"fxflow · recipe [bold]{escape(state.recipe)}[/]{model}")
    if state.stages:
        times = " · ".join(f"{escape(name)} {_seconds(state.timings, name)}" for name in state.stages)
        console.print(f"stages: {times}", highlight=False)
    for renderable in state.report:
        console.print(escape(renderable) if isinstance(renderable, str) else renderable, highlight=False)
    changes = getattr(state, "scenario_changes", [])
    if changes and state.checks:
        held = "they still bind (expect.strict)" if state.pinned_binding else \
            "they are shown beside this run's and equivalence decides (expect.strict=true makes them binding)"
        console.print(f"[bold]exploration[/]: {escape(' '.join(changes))} changes what the recipe's figures "
                      f"describe; {held}.", highlight=False)
    if state.checks:
        console.print(check_table(state.checks))
    for note in state.notes:
        console.print(escape(note), highlight=False)
    if state.skipped:
        console.print(f"[bold yellow]skipped[/] {escape(state.skipped)}", highlight=False)
    if state.error:
        console.print(f"[bold red]error[/] at {escape(state.error['stage'])}: {escape(state.error['message'])}",
                      highlight=False)
    console.print(f"status: [{_STYLE.get(state.status, 'bold')}]{state.status}[/]", highlight=False)
    console.print(f"record: {escape(str(run_dir))}", highlight=False, soft_wrap=True)


def check_table(checks: list[Check]) -> Table:
    """One row per check: a one-word result, then the check in plain words."""
    table = Table(title="checks", title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column("result", no_wrap=True)
    table.add_column("check", overflow="fold")
    for check in checks:
        table.add_row(_mark(check), escape(describe(check)))
    return table


def _mark(check: Check) -> str:
    if not check.binding:
        return "[dim]same[/]" if check.passed else "[yellow]differs[/]"
    return "[green]pass[/]" if check.passed else "[red]FAIL[/]"


def describe(check: Check) -> str:
    """A check in plain words."""
    if check.kind == "equivalence":
        sets = check.extra.get("input_sets", "?")
        diff = check.extra.get("max_abs_diff", float("nan"))
        if check.passed:
            return (f"stage {check.stage} computes what the {check.reference} computes: {check.detail} "
                    f"on {sets} input sets (largest difference {diff:.3g})")
        return f"stage {check.stage} differs from the {check.reference}: {check.detail} (largest difference {diff:.3g})"
    if check.kind == "expectation" and not isinstance(check.actual, dict) and "no metric" not in check.detail:
        metric = check.name.removeprefix("expect.")
        pinned = pinned_words(check.expected)
        if check.passed:
            return f"{metric} is {check.actual!r}, as the recipe pins"
        return f"{metric} is {check.actual!r}; the recipe pins {pinned}"
    return check.detail


def pinned_words(expected: Any) -> str:
    """`{approx: 208.0}` -> 'about 208.0'; a plain value as itself."""
    if isinstance(expected, dict) and expected and set(expected) <= set(_WORDS) | {"rel", "abs"}:
        return " and ".join(f"{_WORDS[op]}{value!r}" for op, value in expected.items() if op in _WORDS)
    return repr(expected)


def _seconds(timings: dict[str, float], stage: str) -> str:
    key = stage if stage == "trace" else f"transform.{stage}"
    return f"{timings.get(key, 0.0):.3f} s"
