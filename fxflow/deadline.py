"""A time limit per stage (`timeout_s`), so a forward that never returns ends the run as `error`.

Building, tracing, each transform and each equivalence check run user code (the model's forward,
its constructor): a `while True:` or a sleep there would hold the run, and a sweep, for ever.
`run_limit(seconds)` sets the limit for one run; each stage then runs inside `stage_deadline(...)`.

How: on Linux and macOS, in the main thread, a SIGALRM timer (setitimer). Its handler raises a
BaseException in the stage's Python code, so `except Exception` in the model or in a wrapper
does not swallow it; the timer fires again every second until the stage has ended. Whatever the
stage raises on its way out (a wrapper's own error, or nothing at all), a stage whose timer fired
ends with StageTimeout, an ordinary exception the run records as `error`. A single torch
operator is not interrupted midway: the alarm takes effect when it returns to Python.

Fallback: where there is no SIGALRM (Windows) or the run is not in the main thread (signals
are delivered only there), stages run without a limit; the log says so once per run.

Nested stages (an equivalence check inside the checks stage) keep the outer limit.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

log = logging.getLogger("fxflow")

_RETRY_S = 1.0  # after the first alarm, fire again this often until the stage ends
_limit: ContextVar[float | None] = ContextVar("fxflow_stage_limit", default=None)
_active: ContextVar[bool] = ContextVar("fxflow_stage_active", default=False)


class _Alarm(BaseException):
    """Raised by the timer inside the stage; stage_deadline turns it into StageTimeout."""


class StageTimeout(Exception):
    """A stage ran past `timeout_s`; the message names the stage and the key to raise."""

    def __init__(self, stage: str, key: str, seconds: float):
        super().__init__(f"{stage} ({key}) ran longer than timeout_s={seconds:g} seconds and was stopped; if it needs "
                         f"longer, raise it (timeout_s={max(seconds * 2, 600):g})")
        self.stage = stage
        self.key = key
        self.seconds = seconds


def can_interrupt() -> bool:
    """Whether stages can be stopped here: SIGALRM exists and this is the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def run_limit(seconds: float | None) -> Iterator[None]:
    """Every stage_deadline inside this block is limited to `seconds` (None: no limit)."""
    if seconds is not None and not can_interrupt():
        log.warning("timeout_s=%s is not enforced: stages can be stopped only in the main thread of a process "
                    "with SIGALRM", seconds)
        seconds = None
    token = _limit.set(seconds)
    try:
        yield
    finally:
        _limit.reset(token)


@contextmanager
def stage_deadline(stage: str, key: str) -> Iterator[None]:
    """Run a stage under the run's limit; StageTimeout (naming `stage` and `key`) when it runs past it."""
    seconds = _limit.get()
    if seconds is None or _active.get() or not can_interrupt():
        yield
        return
    fired = False

    def _alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        fired = True
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, _alarm)
    _active.set(True)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds, _RETRY_S)
            yield
        finally:
            _stop(previous)
    except _Alarm:
        _stop(previous)  # again: the alarm may have landed while the timer was being stopped
        raise StageTimeout(stage, key, seconds) from None
    except Exception as exc:
        if fired:  # a wrapper turned the alarm into an error of its own
            raise StageTimeout(stage, key, seconds) from exc
        raise
    if fired:  # the stage swallowed the alarm and then finished
        raise StageTimeout(stage, key, seconds)


def _stop(previous: Any) -> None:
    """Stop the timer, put the previous handler back, and let the next stage arm its own."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
    _active.set(False)
