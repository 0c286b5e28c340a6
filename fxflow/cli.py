"""The `fxflow` command: a Hydra application over the shipped configs and recipes.

Examples:
    python -m fxflow                                      # default recipe (sparse_nn on three_gpu)
    python -m fxflow recipe=sparse_nn devices=two_gpu
    python -m fxflow recipe=partition_latency transforms.partition.mode=cost_aware
    python -m fxflow -m recipe=partition_latency devices=two_gpu,three_gpu
    python -m fxflow recipe=sparse_nn --cfg job           # print the composed config
    python -m fxflow --help                               # list config groups and recipes

Exit code: 0 when every check of every job passed, 1 otherwise; 130 after Ctrl-C and 143
after SIGTERM (the record says `interrupted`); 2 when an explicit run directory already
holds a record (FXFLOW_OVERWRITE=1 replaces it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fxflow.interrupts import Interrupted, signals_interrupt
from fxflow.paths import conf_dir
from fxflow.recipes import register_recipes
from fxflow.record.run_dir import register_resolvers

_STATUSES: list[str] = []
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
    try:
        state = run_job(cfg, run_dir, overrides, config_files(hydra_cfg.runtime.choices), present=print_outcome)
    except RecordError as exc:  # nothing could be recorded: say so, and let a sweep go on
        print(f"fxflow: error: {exc}", file=sys.stderr)
        _STATUSES.append("error")
        return {"status": "error", "run_dir": str(run_dir), "metrics": {}, "checks": [],
                "error": {"stage": "record", "message": str(exc)}}
    _STATUSES.append(state.status)
    return state.summary(run_dir)


def main() -> None:
    """Entry point of `fxflow` and `python -m fxflow`."""
    try:
        with signals_interrupt():
            register_recipes()
            register_resolvers()
            hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)()
    except Interrupted as exc:
        where = f"; the record at {_RUN_DIRS[-1]} says so" if _RUN_DIRS else ""
        print(f"fxflow: interrupted by {exc.name}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(0 if all(status == "passed" for status in _STATUSES) else 1)
