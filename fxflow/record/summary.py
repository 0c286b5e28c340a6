"""summary.json, the run's contract file: written first as `running`, last with the outcome.

Writing it must not fail silently: when the full summary cannot be written a minimal one is
tried, and when that fails too `RecordError` says so (nothing else records the run).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Callable

from fxflow.config.errors import first_line
from fxflow.record.writer import RunRecord, to_json
from fxflow.run_state import RunState

log = logging.getLogger("fxflow")


class RecordError(Exception):
    """summary.json could not be written at all (disk full, folder gone): nothing records the run."""


def write_summary(record: RunRecord, state: RunState, run_dir: Path) -> None:
    """Write summary.json; when the full summary cannot be written, try a minimal one, then give up loudly."""
    try:
        record.write_json("summary.json", state.summary(run_dir))
        return
    except Exception as exc:  # noqa: BLE001 - e.g. a fact json cannot encode, or the disk is full
        log.error("writing summary.json failed\n%s", traceback.format_exc())
        first = exc
    minimal = {"recipe": state.recipe, "status": "error" if state.status != "running" else "running",
               "error": {"stage": "record", "type": type(first).__name__,
                         "message": f"writing summary.json in {run_dir} failed: {type(first).__name__}: "
                                    f"{first_line(first)}"},
               "run_dir": str(run_dir),
               "process": {"pid": state.pid, "host": state.host, "started_at": state.started_at,
                           "finished_at": state.finished_at}}
    try:
        record.write_json("summary.json", minimal)
    except Exception as exc:  # noqa: BLE001
        try:  # no room for a new file: the old summary's own space takes the short one
            record.rewrite_in_place("summary.json", to_json(minimal))
        except Exception:  # noqa: BLE001 - no summary at all; readers show the `running` one as abandoned
            raise RecordError(f"cannot write summary.json in {run_dir} (hydra.run.dir): {type(exc).__name__}: "
                              f"{first_line(exc)}") from exc
    if state.status != "running":
        state.status = "error"
        state.error = minimal["error"]


def finish(record: RunRecord, state: RunState, run_dir: Path, start: float) -> None:
    """Total time, the final status, and the summary that says it."""
    state.timings["total"] = round(time.perf_counter() - start, 6)
    state.settle()
    log.info("run finished: %s", state.status)
    write_summary(record, state, run_dir)


def present_outcome(show: Callable[[RunState, Path], None], record: RunRecord, state: RunState,
                    run_dir: Path) -> None:
    """Show the outcome; a terminal that cannot take it (closed pipe, odd stream) makes the run an error."""
    try:
        show(state, run_dir)
    except Exception as exc:  # noqa: BLE001
        log.error("printing the summary failed\n%s", traceback.format_exc())
        state.error = {"stage": "print", "type": type(exc).__name__,
                       "message": f"printing the summary to the terminal (stdout) failed: {type(exc).__name__}: "
                                  f"{first_line(exc)}"}
        state.settle()
        write_summary(record, state, run_dir)
