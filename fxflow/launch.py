"""Sweeps on launchers that run jobs in other processes: worker processes that are ready when the
jobs arrive (joblib), and a line counting finished jobs on a terminal (any such launcher).

The joblib launcher hands each job to a loky worker process, and a fresh worker spends about
two seconds importing torch, fxflow's pipeline and matplotlib before its first job can run.
`WarmWorkers` (a Hydra callback, conf/config.yaml) starts those workers as the multirun starts,
so their imports run while the launching process still expands the sweep and composes every
job's config (Hydra's sweeper does that before it launches). The launcher then asks joblib for
an executor with the same arguments, gets the same loky workers (joblib reuses an executor whose
arguments match), and each imports once for all the jobs it runs. Meanwhile the launching
process imports matplotlib for the sweep picture it draws at the end.

The sweep folder itself is fixed in the launching process: `${fxflow.run_id:}` is a cached
resolver (fxflow/record/run_dir.py), and Hydra copies the launching config's resolver cache
into every job's config, so workers of any launcher write under the one folder.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("fxflow")

JOBLIB_LAUNCHER = "JoblibLauncher"
_WORKER_IMPORTS = ("fxflow.cli", "fxflow.pipeline")
_SHOWING: list[tuple[threading.Thread, threading.Event]] = []  # the sweep progress line's thread, while shown


class WarmWorkers(Callback):
    """Start the joblib launcher's workers (and their imports) before the jobs are launched."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = OmegaConf.select(config, "hydra.launcher", default=None)
        if launcher is None or not str(launcher.get("_target_", "")).endswith(JOBLIB_LAUNCHER):
            return
        arguments = joblib_arguments(launcher)
        threading.Thread(target=_warm, args=(arguments,), name="fxflow-warm-workers", daemon=True).start()
        threading.Thread(target=_import_picture_library, name="fxflow-import-matplotlib", daemon=True).start()


def joblib_arguments(launcher: DictConfig) -> dict[str, Any]:
    """The arguments the joblib launcher gives `joblib.Parallel` (hydra_joblib_launcher._core.launch):
    only an executor built from the same ones is reused by the launcher."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    arguments = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(arguments, dict)
    arguments.pop("_target_", None)
    arguments["backend"] = "loky"
    process_joblib_cfg(arguments)
    return arguments


def _warm(arguments: dict[str, Any]) -> None:
    from joblib import Parallel, delayed, effective_n_jobs

    try:
        workers = effective_n_jobs(arguments.get("n_jobs", -1))
        Parallel(**arguments)(delayed(_ready_worker)() for _ in range(workers))
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the launcher reports real failures
        log.warning("joblib workers were not warmed: %s", exc)


def _ready_worker() -> None:
    """Runs in a worker: import what every job needs, once."""
    for name in _WORKER_IMPORTS:
        importlib.import_module(name)
    _import_picture_library()


def _import_picture_library() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        pass


class SweepProgress(Callback):
    """On a terminal, while a launcher runs jobs in other processes (whose own lines say little),
    a line counting the jobs that have left a finished record in the sweep folder."""

    POLL_SECONDS = 0.5

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import sys
        from pathlib import Path

        from fxflow.record.sweep import expected_jobs

        launcher = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if launcher.endswith("BasicLauncher") or not sys.stdout.isatty():
            return  # the basic launcher's jobs print their own outcome as they end
        jobs = expected_jobs(config)
        folder = Path(str(config.hydra.sweep.dir))
        stop = threading.Event()
        thread = threading.Thread(target=self._show, args=(folder, len(jobs) if jobs else None, stop),
                                  name="fxflow-sweep-progress", daemon=True)
        _SHOWING[:] = [(thread, stop)]  # not on self: the launcher pickles its callbacks to the workers
        thread.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for thread, stop in _SHOWING:
            stop.set()
            thread.join()
        _SHOWING.clear()

    def _show(self, folder: Any, total: int | None, stop: threading.Event) -> None:
        from fxflow.bounded_load import load_record
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from fxflow.reports.console import make_console

        started = time.time()

        def finished() -> int:
            count = 0
            for path in folder.glob("*/summary.json"):
                try:
                    fresh = path.stat().st_mtime >= started
                except OSError:
                    continue
                summary = load_record(path) if fresh else None
                count += summary is not None and summary.get("status") != "running"
            return count

        with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("jobs"), TimeElapsedColumn(),
                      console=make_console(), transient=True) as progress:
            task = progress.add_task("sweep", total=total)
            while not stop.wait(self.POLL_SECONDS):
                progress.update(task, completed=finished())
