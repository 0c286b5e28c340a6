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
callback before Hydra writes anything into it: it must be new or empty; one that holds a
record is refused (exit 2) unless FXFLOW_OVERWRITE=1 is set, and then only when it holds
nothing but fxflow's record (what its manifest claims, fxflow.record.owned), which is removed
first. A folder with anything else in it is refused either way. A sweep directory that holds
the same sweep (the same overrides as typed) is re-run in place (passed jobs whose config is
unchanged are kept, fxflow.record.sweep); a different sweep is refused; a job that runs again
has its old job folder's record removed first (`fresh_job_dir`).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fxflow.record.owned import foreign, is_empty, remove_owned
from fxflow.record.sweep import job_overrides
from fxflow.record.writer import RecordPathError, RunRecord, plain_relative, read_manifest

OVERWRITE_ENV = "FXFLOW_OVERWRITE"
RECORD_MARKERS = ("summary.json", "sweep_summary.json")
# What a sweep folder holds besides its job folders (each a record with its own manifest).
SWEEP_FILES = ("multirun.yaml", "sweep_summary.json", "sweep_summary.md", "sweep_summary.csv", "sweep_summary.png",
               ".fail_fast_stop")
SWEEP_NOTE = "sweep"  # the manifest of a sweep folder keeps the sweep's identity under this key
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
    if not _is_real_dir(folder):
        return False
    if read_manifest(folder) is not None or any(os.path.lexists(folder / m) for m in RECORD_MARKERS):
        return True
    return any(_is_real_dir(child) and (os.path.lexists(child / "summary.json") or read_manifest(child) is not None)
               for child in folder.iterdir())


def hydra_job_files(hydra: DictConfig) -> tuple[str, ...]:
    """The files Hydra writes into a job's folder before the job runs: `.hydra/*.yaml` and the log."""
    subdir = hydra.get("output_subdir")
    saved = [f"{subdir}/{name}" for name in ("config.yaml", "hydra.yaml", "overrides.yaml")] if subdir else []
    names = []
    for name in [*saved, f"{hydra.job.name}.log"]:
        try:
            names.append(plain_relative(name))
        except RecordPathError:
            continue  # a name that leaves the folder is never claimed
    return tuple(names)


def fresh_job_dir(folder: Path, hydra: DictConfig) -> None:
    """Before a sweep job runs again in its folder, remove the earlier job's record files (what its
    manifest claims), keeping the files Hydra has just written there for this job. Hydra has already
    opened this job's log: it stays and is emptied (a removed log would take this run's lines with it)."""
    if read_manifest(folder) is not None:
        remove_owned(folder, keep=hydra_job_files(hydra), nested=False)
        log = folder / f"{hydra.job.name}.log"
        if log.is_file() and not log.is_symlink():
            with open(log, "r+") as handle:
                handle.truncate(0)


def sweep_identity(config: DictConfig) -> list[str]:
    """What makes two sweeps the same sweep: the overrides as typed (`devices=a,b`), except the
    `sweep.*` switches, which say how to run it (re-run passed jobs, stop at the first failure)."""
    return job_overrides(list(config.hydra.overrides.task))


class FreshRunDir(Callback):
    """Refuse a run or sweep directory that holds anything fxflow may not write over, before Hydra
    writes into it, and claim the files Hydra writes for each job in the record's manifest."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        key = "hydra.run.dir"
        folder = Path(str(OmegaConf.select(config, key)))
        if is_empty(folder):
            return
        if not _is_real_dir(folder):
            _refuse(f"{key}={folder} is not a folder")
        if os.environ.get(OVERWRITE_ENV) == "1":
            _overwrite(key, folder)
            return
        if holds_record(folder):
            _refuse(f"{key}={folder} already holds the record of an earlier run; pick another folder (or leave "
                    f"{key} unset for a fresh one), or set {OVERWRITE_ENV}=1 to replace that record")
        _refuse(f"{key}={folder} holds files that are not an fxflow record ({_listing(foreign(folder))}); a run "
                f"writes into a new or empty folder only: pick another folder (or leave {key} unset for a fresh one)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """The same sweep into its folder again resumes it (jobs that passed with the same config are
        not run again); a different sweep is refused; FXFLOW_OVERWRITE=1 starts over."""
        key = "hydra.sweep.dir"
        folder = Path(str(OmegaConf.select(config, key)))
        identity = sweep_identity(config)
        if not is_empty(folder):
            if not _is_real_dir(folder):
                _refuse(f"{key}={folder} is not a folder")
            if os.environ.get(OVERWRITE_ENV) == "1":
                _overwrite(key, folder)
            else:
                mine = foreign(folder)
                if mine:
                    _refuse(f"{key}={folder} holds files that are not an fxflow record ({_listing(mine)}); pick "
                            f"another folder (or leave {key} unset for a fresh one)")
                earlier = RunRecord(folder).note(SWEEP_NOTE)
                if earlier != identity:
                    shown = " ".join(earlier) if isinstance(earlier, list) else "unknown"
                    _refuse(f"{key}={folder} holds another sweep ({shown}); running the same sweep again resumes "
                            f"it, a different one needs another folder (or leave {key} unset), or set "
                            f"{OVERWRITE_ENV}=1 to replace it")
        record = RunRecord(folder)
        record.set_note(SWEEP_NOTE, identity)
        for name in SWEEP_FILES:
            record.claim(name)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Hydra has written `.hydra/` and opened the job's log in a folder checked above: claim them."""
        record = RunRecord(Path(str(config.hydra.runtime.output_dir)))
        for name in hydra_job_files(config.hydra):
            if os.path.isfile(record.run_dir / name) and not os.path.islink(record.run_dir / name):
                record.claim(name, existing=True)


def _overwrite(key: str, folder: Path) -> None:
    """Remove the earlier record from `folder`, after checking that nothing else is there."""
    mine = foreign(folder)
    if mine:
        _refuse(f"{key}={folder} holds files that fxflow did not write ({_listing(mine)}); {OVERWRITE_ENV}=1 "
                f"replaces only an fxflow record and leaves this folder as it is: pick another folder")
    left = remove_owned(folder)
    if left:
        _refuse(f"{key}={folder}: files appeared while the earlier record was removed ({_listing(left)})")


def _refuse(message: str) -> NoReturn:
    print(f"fxflow: {message}", file=sys.stderr)
    sys.exit(2)


def _listing(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _is_real_dir(folder: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(folder).st_mode)
    except OSError:
        return False
