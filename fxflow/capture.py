"""What a run borrows from the process and gives back: the `fxflow` log's file, stderr, and
torch's intra-op thread count. Each is a context manager that restores what it changed."""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Iterator

import torch

log = logging.getLogger("fxflow")


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Send the `fxflow` logger to the record's fxflow.log, unless a handler (Hydra's) already writes there."""
    target = str(path.resolve())
    for candidate in (log, logging.getLogger()):
        if any(getattr(h, "baseFilename", None) == target for h in candidate.handlers):
            yield
            return
    try:
        handler = logging.FileHandler(target, encoding="utf-8")
    except OSError:
        yield  # no log file; summary.json still says what happened
        return
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


@contextmanager
def stderr_to_log() -> Iterator[None]:
    """Library chatter on stderr goes to fxflow.log, not the terminal: torch's ShapeProp, for one,
    prints a full traceback before re-raising, and the run reports that failure in one message."""
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        if buffer.getvalue().strip():
            log.warning("written to stderr during the run:\n%s", buffer.getvalue().rstrip())


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the run, restored after it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
