"""The short terminal summary of a run: stages with time, stage reports, checks in words, the record's place.

Written to read at 80 columns: tables wrap between words (never inside a name), the record's
path is printed on a line of its own that never wraps, and an exploration says which override
changed the scenario before the checks show the recipe's figures beside the run's.

Text that comes from a config or an exception (recipe and stage names, error messages, check
details) is passed as rich `Text`, never as markup, so `[...]` in it is printed as written.
On a terminal whose encoding cannot show a character (an ASCII or Latin-1 stdout), that
character is replaced instead of failing the run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fxflow.checks.result import Check

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red", "skipped": "bold yellow",
          "interrupted": "bold yellow"}
_WORDS = {"eq": "", "ne": "not ", "lt": "below ", "le": "at most ", "gt": "above ", "ge": "at least ",
          "approx": "about ", "len": "with length ", "contains": "containing ", "excludes": "without ",
          "subset": "within ", "superset": "including ", "matches": "matching "}


class _Replacing:
    """A text stream that replaces what its encoding cannot carry (rich writes through it)."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.encoding = getattr(stream, "encoding", None) or "ascii"

    def write(self, text: str) -> int:
        return self._stream.write(text.encode(self.encoding, "replace").decode(self.encoding))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def terminal_stream(stream: TextIO | None = None) -> TextIO | _Replacing:
    """`stream` (default stdout) as is when it speaks UTF-8, else wrapped to replace what it cannot show."""
    stream = stream or sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return stream if encoding.startswith("utf") else _Replacing(stream)


def make_console(width: int | None = None, stream: TextIO | None = None) -> Console:
    """A terminal's own width; COLUMNS when set (a pipe too: `COLUMNS=80 fxflow ... | less`); else
    100 columns when writing to a file or a pipe."""
    out = terminal_stream(stream)
    return Console(file=out, width=width or (None if out.isatty() else _columns() or 100))  # type: ignore[arg-type]


def _columns() -> int | None:
    text = os.environ.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def print_outcome(state: Any, run_dir: Path, console: Console | None = None) -> None:
    console = console or make_console()
    title = Text.assemble("fxflow · recipe ", (state.recipe, "bold"))
    if getattr(state, "model", ""):
        title.append_text(Text.assemble(" · model ", (state.model, "bold")))
    console.rule(title)
    if state.stages:
        console.print(Text("stages: " + " · ".join(f"{name} {_seconds(state.timings, name)}" for name in state.stages)),
                      highlight=False)
    for renderable in state.report:
        console.print(Text(renderable) if isinstance(renderable, str) else renderable, highlight=False)
    changes = getattr(state, "scenario_changes", [])
    if changes and state.checks:
        held = "they still bind (expect.strict)" if state.pinned_binding else \
            "they are shown beside this run's and equivalence decides (expect.strict=true makes them binding)"
        console.print(Text.assemble(("exploration", "bold"), f": {' '.join(changes)} changes what the recipe's "
                                    f"figures describe; {held}."), highlight=False)
    if state.checks:
        console.print(check_table(state.checks))
    for note in state.notes:
        console.print(Text(note), highlight=False)
    if state.skipped:
        console.print(Text.assemble(("skipped", "bold yellow"), " ", state.skipped), highlight=False)
    if state.error:
        console.print(Text.assemble(("error", "bold red"), " at ", str(state.error["stage"]), ": ",
                                    str(state.error["message"])), highlight=False)
    console.print(Text.assemble("status: ", (state.status, _STYLE.get(state.status, "bold"))), highlight=False)
    console.print(Text(f"record: {run_dir}"), highlight=False, soft_wrap=True)


def check_table(checks: list[Check]) -> Table:
    """One row per check: a one-word result, then the check in plain words."""
    table = Table(title="checks", title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column("result", no_wrap=True)
    table.add_column("check", overflow="fold")
    for check in checks:
        table.add_row(_mark(check), Text(describe(check)))
    return table


def _mark(check: Check) -> Text:
    if check.kind == "skip":
        return Text("skip", "yellow")
    if not check.binding:
        return Text("same", "dim") if check.passed else Text("differs", "yellow")
    return Text("pass", "green") if check.passed else Text("FAIL", "red")


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
        if _is_comparison(check.expected):
            return f"{metric} is {check.actual!r}; the recipe's check: {pinned_words(check.expected)}"
        if check.passed:
            return f"{metric} is {check.actual!r}, as the recipe pins"
        return f"{metric} is {check.actual!r}; the recipe pins {pinned_words(check.expected)}"
    return check.detail


def _is_comparison(expected: Any) -> bool:
    """A range or property (`{gt: 0}`, `{ge: 2}`, `{len: 3}`, `{contains: x}`), not one pinned value
    (a plain value, `{eq: v}` or `{approx: v}`)."""
    return isinstance(expected, dict) and bool(expected) and set(expected) <= set(_WORDS) | {"rel", "abs"} \
        and not set(expected) <= {"eq", "approx", "rel", "abs"}


def pinned_words(expected: Any) -> str:
    """`{approx: 208.0}` -> 'about 208.0'; a plain value as itself."""
    if isinstance(expected, dict) and expected and set(expected) <= set(_WORDS) | {"rel", "abs"}:
        return " and ".join(f"{_WORDS[op]}{value!r}" for op, value in expected.items() if op in _WORDS)
    return repr(expected)


def _seconds(timings: dict[str, float], stage: str) -> str:
    key = stage if stage == "trace" else f"transform.{stage}"
    return f"{timings.get(key, 0.0):.3f} s"
