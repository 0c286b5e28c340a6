"""Every run gets its own record folder, and a folder that already holds a record is never reused silently.

The default run directory (conf/config.yaml) is

    outputs/DATE/HH-MM-SS-ffffff-RECIPE-PIDTOKEN

made of the time to the microsecond, the recipe name made safe for a path (`fxflow.slug`),
and a per-process token (`fxflow.run_id`: the process id and random hex), so two runs
started in the same second, or the same microsecond, get different folders. Both resolvers
are registered by `register_resolvers()` before Hydra composes the config. `fxflow.run_id` is
cached like Hydra's `now`: a sweep folder is resolved once in the launching process, and Hydra
copies that config's resolver cache into every job's config, so jobs that a launcher runs in
other processes (joblib, submitit) write under the same folder instead of one per worker.

A run directory given explicitly (`hydra.run.dir=...`) is checked by the `FreshRunDir`
callback before Hydra writes anything into it: one that already holds a record is refused,
unless FXFLOW_OVERWRITE=1 is set; then the previous record's files are removed first, so
nothing of the old run sits beside the new one. A sweep directory that holds an earlier sweep
is re-run in place (fxflow.record.sweep: passed jobs are kept); a job that runs again has its
old job folder's record removed first (`fresh_job_dir`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

OVERWRITE_ENV = "FXFLOW_OVERWRITE"
RECORD_MARKERS = ("summary.json", "sweep_summary.json")
# What an fxflow record consists of at its top level (stage folders are named in summary.json).
RECORD_ENTRIES = ("summary.json", "sweep_summary.json", "sweep_summary.md", "config.yaml", "fxflow.log", ".hydra",
                  "graphs", "multirun.yaml")
JOB_LOG = "fxflow.log"  # hydra.job_logging in conf/config.yaml: ${hydra.job.name}.log
_RUN_ID: list[str] = []


def slug(value: Any) -> str:
    """`value` as a safe folder-name part: letters, digits, '_' and '-', at most 64 characters."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)).strip("_-")[:64]
    return text or "run"


def run_id() -> str:
    """This process's token: its pid and 4 random hex digits (the same for every call in one process)."""
    if not _RUN_ID:
        _RUN_ID.append(f"{os.getpid()}{secrets.token_hex(2)}")
    return _RUN_ID[0]


def register_resolvers() -> None:
    """`${fxflow.slug:${recipe}}` and `${fxflow.run_id:}` for the run directory template (run_id cached:
    a worker process of a launcher reuses the launching process's token instead of making its own)."""
    OmegaConf.register_new_resolver("fxflow.slug", slug, replace=True)
    OmegaConf.register_new_resolver("fxflow.run_id", run_id, replace=True, use_cache=True)


def holds_record(folder: Path) -> bool:
    """True when `folder` already holds an fxflow record (a run's or a sweep's, or a sweep job's)."""
    if not folder.is_dir():
        return False
    if any((folder / marker).exists() for marker in RECORD_MARKERS):
        return True
    return any((child / "summary.json").exists() for child in folder.iterdir() if child.is_dir())


def remove_record(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove the files of an earlier fxflow record from `folder` (only those, never anything else;
    not the entries named in `keep`)."""
    for child in [folder, *[c for c in folder.iterdir() if c.is_dir() and (c / "summary.json").exists()]]:
        stages: set[str] = set()
        summary = child / "summary.json"
        try:
            listed = json.loads(summary.read_text()).get("files", {})
            stages = {Path(f).parts[0] for files in listed.values() for f in files if Path(f).parts}
            stages |= set(listed)
        except (OSError, ValueError, AttributeError):
            pass
        for name in [*RECORD_ENTRIES, *sorted(stages)]:
            if name in keep:
                continue
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
                continue
            path = child / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if child != folder and not any(child.iterdir()):
            child.rmdir()


def fresh_job_dir(folder: Path) -> None:
    """Before a sweep job runs again in its folder, remove the earlier job's record files. Hydra has
    already written this job's `.hydra/` and opened its log there: `.hydra` stays, the log is emptied
    (a removed log would take every line of this run with it)."""
    if (folder / "summary.json").exists():
        remove_record(folder, keep=(".hydra", JOB_LOG))
        if (folder / JOB_LOG).is_file():
            with open(folder / JOB_LOG, "r+") as log:
                log.truncate(0)


class FreshRunDir(Callback):
    """Refuse a run or sweep directory that already holds a record, before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep folder that holds an earlier sweep is how that sweep is re-run (jobs that passed
        are not run again, the others are re-run into fresh job folders); FXFLOW_OVERWRITE=1
        starts it over."""
        if os.environ.get(OVERWRITE_ENV) == "1":
            folder = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
            if holds_record(folder):
                remove_record(folder)

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        folder = Path(str(OmegaConf.select(config, key)))
        if not holds_record(folder):
            return
        if os.environ.get(OVERWRITE_ENV) == "1":
            remove_record(folder)
            return
        print(f"fxflow: {key}={folder} already holds the record of an earlier run; pick another folder (or leave "
              f"{key} unset for a fresh one), or set {OVERWRITE_ENV}=1 to replace that record", file=sys.stderr)
        sys.exit(2)
