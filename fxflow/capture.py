"""What a run borrows from the process and gives back: the `fxflow` log's file, stderr, torch's
intra-op thread count and Python's cyclic garbage collector (context managers that restore what
they changed), and what stage modules hold (worker processes), released by `close_stages` however
the run ends."""

from __future__ import annotations

import gc
import io
import logging
import traceback
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, Iterator

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


@contextmanager
def collector_paused(collect_after: bool = True) -> Iterator[None]:
    """No automatic cyclic garbage collection during the run's stages; one collection after them.

    A traced graph is millions of small containers (nodes, their args, meta dicts) that live
    until the run ends; each time the young generations fill, the collector walks what was
    just built again, which is about a sixth of a 100,000-node run. Reference counting still
    frees everything that is not in a cycle, and the cycles left behind are collected once here
    (the young generation, where the paused collector left all of them).
    A process that ends with the run (`collect_after=False`: the command's one job) skips that
    collection, seconds at 100,000 nodes: what exists is frozen (the collector never walks it
    again) and the exit frees it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not collect_after:
                gc.freeze()
            gc.enable()
            if collect_after:
                # the youngest generation only: with the collector off, everything the run made is
                # there, so this frees the run's cycles without walking the rest of the heap (a full
                # collection in a long-lived process, a test worker or a sweep's, costs ~0.2 s a run)
                gc.collect(0)


def close_stages(modules: dict[str, Any]) -> None:
    """Close every stage module whose class defines `close()`; one failing does not stop the rest."""
    for name, module in modules.items():
        if callable(getattr(type(module), "close", None)):
            try:
                module.close()
            except Exception:  # noqa: BLE001 - closing one stage must not hide the run's outcome
                log.warning("closing stage %s failed\n%s", name, traceback.format_exc())
