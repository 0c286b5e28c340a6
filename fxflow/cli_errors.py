"""Failures inside Hydra's own machinery, told in one line.

Before the job function runs, Hydra composes the config, creates the run folder and writes
`.hydra/`; after it, the launcher and callbacks run. A failure there (a read-only `outputs/`, a
full disk, a defaults list that includes itself) would print a Python traceback as the only
explanation. Hydra prints a traceback unless HYDRA_FULL_ERROR is set, in which case it re-raises
instead; `hydra_errors_in_one_line` sets it for the length of the command, and prints what was
raised as one line naming the file, exit code 1. A user who sets HYDRA_FULL_ERROR=1 themselves
still gets the full traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from hydra.errors import CompactHydraException
from omegaconf.errors import OmegaConfBaseException

_FLAG = "HYDRA_FULL_ERROR"


@contextmanager
def hydra_errors_in_one_line(explain: Callable[[Exception], str | None] | None = None) -> Iterator[None]:
    """Run a Hydra application; an exception escaping it is printed as one line, exit code 1.
    `explain` may word a failure better than `describe` can, knowing the command's overrides."""
    wanted = os.environ.get(_FLAG)
    os.environ[_FLAG] = "1"
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point: one line instead of a traceback
        if wanted == "1":
            raise
        print(f"fxflow: error: {(explain(exc) if explain else None) or describe(exc)}", file=sys.stderr)
        sys.exit(1)
    finally:
        if wanted is None:
            os.environ.pop(_FLAG, None)
        else:
            os.environ[_FLAG] = wanted


def describe(exc: BaseException) -> str:
    """One line saying what failed, naming the file where there is one, and what to do."""
    if isinstance(exc, CompactHydraException):  # Hydra's own messages (bad override, missing option)
        text = str(exc).strip()
        if isinstance(exc.__cause__, OmegaConfBaseException):
            text += f" ({_first(exc.__cause__)})"
        return text
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        what = exc.strerror or _first(exc)
        hint = ("free some space or pick another folder with hydra.run.dir=DIR" if exc.errno == errno.ENOSPC
                else "pick a folder you can write with hydra.run.dir=DIR (hydra.sweep.dir=DIR for -m)")
        return f"creating the run folder or writing Hydra's files in it failed: {where}{what}; {hint}"
    if isinstance(exc, RecursionError):
        return ("composing the config never ended: a defaults list includes its own file (directly or through "
                "another config); remove that entry")
    return f"{type(exc).__name__}: {_first(exc)} (set {_FLAG}=1 to see where)"


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
