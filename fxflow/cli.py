"""The `fxflow` command: a Hydra application over the shipped configs and recipes, plus review verbs.

Examples:
    python -m fxflow                                      # default recipe (sparse_nn on three_gpu)
    python -m fxflow recipe=sparse_nn devices=two_gpu
    python -m fxflow recipe=partition_latency transforms.partition.mode=cost_aware
    python -m fxflow -m recipe=partition_latency devices=two_gpu,three_gpu
    python -m fxflow recipe=sparse_nn --cfg job           # print the composed config
    python -m fxflow --help                               # recipes, groups and their options
    fxflow ls | show NAME | validate --all | cp NAME DEST | diff RUN_A RUN_B | --version

A first word that names a verb (fxflow.verbs) runs the verb; anything else goes to Hydra.
`--config-dir DIR` (anywhere on the line) adds a folder of your configs ahead of the shipped ones.

Exit code: 0 when every job passed (or was skipped for a missing requirement), 1 otherwise;
130 after Ctrl-C and 143 after SIGTERM (the record says `interrupted`); 2 when an explicit run
directory already holds a record (FXFLOW_OVERWRITE=1 replaces it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fxflow.cli_errors import hydra_errors_in_one_line
from fxflow.interrupts import Interrupted, signals_interrupt
from fxflow.paths import conf_dir, set_config_dirs
from fxflow.record.run_dir import fresh_job_dir, register_resolvers

_STATUSES: list[str] = []
_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
_RUN_DIRS: list[Path] = []


def _task(cfg: DictConfig) -> dict:
    from fxflow.compose import config_files
    from fxflow.pipeline import RecordError, run_job
    from fxflow.reports.console import print_outcome

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    _RUN_DIRS.append(run_dir)
    # Overrides as typed: `seed=${nope}` must be recorded, not resolved.
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    if sweeping and (done := _sweep_job_done(cfg, run_dir, overrides)) is not None:
        _STATUSES.append(done["status"])
        return done
    if sweeping:
        fresh_job_dir(run_dir)  # a re-run sweep: this job's earlier record goes, it runs afresh
    try:
        state = run_job(cfg, run_dir, overrides, config_files(hydra_cfg.runtime.choices, hydra_cfg.runtime.config_sources),
                        present=print_outcome)
    except RecordError as exc:  # nothing could be recorded: say so, and let a sweep go on
        print(f"fxflow: error: {exc}", file=sys.stderr)
        _STATUSES.append("error")
        return {"status": "error", "run_dir": str(run_dir), "metrics": {}, "checks": [],
                "error": {"stage": "record", "message": str(exc)}}
    _STATUSES.append(state.status)
    if sweeping and state.status != "passed" and OmegaConf.select(cfg, "sweep.fail_fast", default=False):
        from fxflow.record.sweep import stop

        stop(Path(hydra_cfg.sweep.dir), str(hydra_cfg.job.num))
    return state.summary(run_dir)


def _sweep_job_done(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict | None:
    """A sweep job that need not run: passed in an earlier run of the same sweep, or after a failure
    in a fail_fast sweep. Returns its summary, or None to run it."""
    from fxflow.record.sweep import earlier_pass, skipped_summary, stopped

    hydra_cfg = HydraConfig.get()
    recipe = str(OmegaConf.select(cfg, "recipe", default="?", throw_on_resolution_failure=False))
    if not OmegaConf.select(cfg, "sweep.rerun_passed", default=False) and (earlier := earlier_pass(run_dir, overrides)):
        print(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): passed in an earlier run of this sweep; "
              "not run again (sweep.rerun_passed=true runs it)")
        return earlier
    if OmegaConf.select(cfg, "sweep.fail_fast", default=False) and stopped(Path(hydra_cfg.sweep.dir)):
        print(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): skipped, an earlier job failed (sweep.fail_fast)")
        return skipped_summary(run_dir, overrides, recipe, "an earlier job of this fail_fast sweep failed")
    return None


def _take_config_dirs(argv: list[str]) -> list[str]:
    """Remove `--config-dir DIR` / `--config-dir=DIR` / `-cd DIR` from the line and put DIR on the
    search path ahead of the shipped configs (Hydra's own handling would put it after them)."""
    rest, dirs = [], []
    items = iter(argv)
    for item in items:
        if item in _CONFIG_DIR_FLAGS:
            dirs.append(next(items, "."))
        elif item.startswith("--config-dir="):
            dirs.append(item.split("=", 1)[1])
        else:
            rest.append(item)
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        sys.exit(f"fxflow: config folder {missing[0]} not found (--config-dir)")
    set_config_dirs(dirs)
    return rest


def _exit_code() -> int:
    """A sweep's exit code comes from its jobs' records on disk (they may have run in other processes)."""
    from fxflow.record.sweep import SweepSummary

    if SweepSummary.outcome is not None:
        return 0 if SweepSummary.outcome[0] else 1
    return 0 if all(status in ("passed", "skipped") for status in _STATUSES) else 1  # one job, or none (--cfg, --help)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `fxflow` and `python -m fxflow`."""
    from fxflow.record.sweep import SweepSummary

    _STATUSES.clear()
    SweepSummary.outcome = None
    argv = _take_config_dirs(list(sys.argv[1:] if argv is None else argv))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `fxflow` finds the user's model modules as `python -m fxflow` does
    from fxflow.verbs import is_verb, run_verb

    if is_verb(argv):
        sys.exit(run_verb(argv))
    try:
        with signals_interrupt():
            register_resolvers()
            from fxflow.verbs.ls import overview_text

            OmegaConf.register_new_resolver("fxflow_overview", lambda: overview_text(), replace=True)  # --help's listing
            sys.argv = [sys.argv[0], *argv]
            with hydra_errors_in_one_line():  # a read-only outputs/, a full disk: one line, not a traceback
                hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)()
    except Interrupted as exc:
        where = f"; the record at {_RUN_DIRS[-1]} says so" if _RUN_DIRS else ""
        print(f"fxflow: interrupted by {exc.name}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(_exit_code())
