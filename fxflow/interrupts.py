"""Ctrl-C and SIGTERM end a run as `interrupted` (exit 130 / 143), never with a traceback.

The command wraps its work in `signals_interrupt()`; inside, SIGINT and SIGTERM raise
`Interrupted`, which is a BaseException so that no step's `except Exception` can swallow it.
The run catches it, writes `summary.json` with status `interrupted`, and lets it reach the
command, which exits with 128 + the signal number:

    with signals_interrupt():
        run_everything()          # raises Interrupted(SIGTERM) when the process is told to stop

Only the first signal raises; further ones are ignored until the block ends, so a second
Ctrl-C cannot cut the final summary in half.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process was told to stop; `exit_code` is the conventional 128 + signal number."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = signum
        super().__init__(f"interrupted by {self.name}")

    def __reduce__(self) -> tuple[type, tuple[int]]:
        """Rebuilt from its signal number: a launcher's worker process sends it back to the sweep."""
        return (Interrupted, (int(self.signum),))

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def as_interrupt(exc: BaseException) -> Interrupted | None:
    """Interrupted for an Interrupted or a bare KeyboardInterrupt (Ctrl-C outside the command); else None."""
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    return None


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises Interrupted; later ones are ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    fired = False

    def _handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, _handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
