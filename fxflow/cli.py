"""The `fxflow` command: a Hydra application over the shipped configs and recipes.

Examples:
    python -m fxflow                                      # default recipe (sparse_nn on three_gpu)
    python -m fxflow recipe=sparse_nn devices=two_gpu
    python -m fxflow recipe=partition_latency transforms.partition.mode=cost_aware
    python -m fxflow -m recipe=partition_latency devices=two_gpu,three_gpu
    python -m fxflow recipe=sparse_nn --cfg job           # print the composed config
    python -m fxflow --help                               # list config groups and recipes

Exit code: 0 when every job passed (or was skipped for a missing requirement), 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fxflow.paths import conf_dir
from fxflow.recipes import register_recipes

_STATUSES: list[str] = []


def _task(cfg: DictConfig) -> dict:
    from fxflow.compose import config_files
    from fxflow.pipeline import run_job
    from fxflow.reports.console import print_outcome

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # Overrides as typed: `seed=${nope}` must be recorded, not resolved.
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    state = run_job(cfg, run_dir, overrides, config_files(hydra_cfg.runtime.choices))
    print_outcome(state, run_dir)
    _STATUSES.append(state.status)
    return state.summary(run_dir)


def main() -> None:
    """Entry point of `fxflow` and `python -m fxflow`."""
    register_recipes()
    app = hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)
    app()
    sys.exit(0 if all(status in ("passed", "skipped") for status in _STATUSES) else 1)
