"""The short terminal summary of a run: stages with time, stage reports, checks, the record's place.

Text that comes from a config or an exception (recipe and stage names, error messages, check
details) is passed as rich `Text`, never as markup, so `[...]` in it is printed as written.
On a terminal whose encoding cannot show a character (an ASCII or Latin-1 stdout), that
character is replaced instead of failing the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fxflow.checks.result import Check

_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold red", "interrupted": "bold yellow"}


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


def print_outcome(state: Any, run_dir: Path, console: Console | None = None) -> None:
    if console is None:
        stream = terminal_stream()
        console = Console(file=stream, width=None if stream.isatty() else 120)  # type: ignore[arg-type]
    console.rule(Text.assemble("fxflow · recipe ", (state.recipe, "bold")))
    if state.stages:
        stages = Table(title="stages", title_justify="left")
        stages.add_column("stage")
        stages.add_column("seconds", justify="right")
        for name in state.stages:
            key = name if name == "trace" else f"transform.{name}"
            stages.add_row(Text(name), f"{state.timings.get(key, 0.0):.4f}")
        console.print(stages)
    for renderable in state.report:
        console.print(Text(renderable) if isinstance(renderable, str) else renderable, highlight=False)
    if state.checks:
        checks = Table(title="checks", title_justify="left")
        for column in ("check", "result", "detail"):
            checks.add_column(column, overflow="fold")
        for check in state.checks:
            mark = Text("pass", "green") if check.passed else Text("FAIL", "red")
            if check.kind == "skip":
                mark = Text("skip", "yellow")
            checks.add_row(Text(check.name), mark, Text(describe(check)))
        console.print(checks)
    if state.error:
        console.print(Text.assemble(("error", "bold red"), " at ", str(state.error["stage"]), ": ",
                                    str(state.error["message"])), highlight=False)
    console.print(Text.assemble("status: ", (state.status, _STYLE.get(state.status, "bold")), "   record: ",
                                str(run_dir)), highlight=False)


def describe(check: Check) -> str:
    """A check in plain words."""
    if check.kind == "equivalence":
        figures = f"on {check.extra['input_sets']} input sets, largest difference {check.extra['max_abs_diff']:.3g}"
        if check.passed:
            return f"{check.detail} the {check.reference} {figures}"
        return f"differs from the {check.reference} {figures}: {check.detail}"
    return check.detail
