"""Progress of long work, on a terminal only: the step a run is in, with its elapsed seconds, and
a count for loops that know their length (the catalogues' cases).

The command turns it on for a run whose output is a terminal (`enabled(console)`); each step
(`RunState.timed`: build, trace, every transform and check) then runs inside `stage(name)`, which
shows a transient spinner line once the step has lasted `DELAY` seconds, so a partition search,
an execute stage's warm-up or a catalogue never sits silent for minutes. Code that loops over
known work wraps it in `steps(items, what)` to show `what 120/702`. Off (a pipe, a file, tests),
both are plain pass-throughs.

    for case in steps(cases, "OpInfo entries"):
        ...
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")
DELAY = 2.0  # seconds a step runs before its line appears: quick steps never flicker
_state: dict[str, object] = {}  # "console" while enabled; "progress" while a stage's line is shown


@contextmanager
def enabled(console: Console | None) -> Iterator[None]:
    """Show progress on `console` for the length of the block, when it is a terminal."""
    if console is None or not console.is_terminal:
        yield
        return
    _state["console"] = console
    try:
        yield
    finally:
        _state.clear()


@contextmanager
def stage(name: str) -> Iterator[None]:
    """One step of a run: a spinner with its name and elapsed time, after DELAY seconds."""
    console = _state.get("console")
    if console is None or "progress" in _state:
        yield
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[count]}"),
                        TimeElapsedColumn(), console=console, transient=True)  # type: ignore[arg-type]
    progress.add_task(name, total=None, count="")
    lock, ended = threading.Lock(), []

    def show() -> None:
        with lock:
            if not ended:
                progress.start()

    _state["progress"] = progress
    timer = threading.Timer(DELAY, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            ended.append(True)
            timer.cancel()
            progress.stop()
        _state.pop("progress", None)


def steps(items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
    """`items`, counted on the current stage's line (`what 12/702`) while progress is on."""
    progress = _state.get("progress")
    if not isinstance(progress, Progress):
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    task = progress.add_task(f"  {what}", total=total, count=f"0/{total or '?'}")
    try:
        for done, item in enumerate(items, 1):
            yield item
            progress.update(task, completed=done, count=f"{done}/{total or '?'}")
    finally:
        progress.remove_task(task)
