"""The `error` record of a run refused before Hydra composed it: a name that no config provides
(`recipe=sparse_nnn`, `devices=tow_gpu`). Nothing ran, but a bad config still leaves the record
that says so, in the folder the run would have had (the `hydra.run.dir` template of
conf/config.yaml, or the folder named on the command line), as every other `error` does.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from fxflow.paths import conf_dir
from fxflow.record.run_dir import holds_record, register_resolvers
from fxflow.record.writer import RunRecord

STAGE = "compose"


def record_refused_run(overrides: list[str], message: str) -> Path | None:
    """Write the `error` summary.json of a refused single run; returns its folder (None when the
    folder named on the command line already holds a record: that one is never overwritten)."""
    from fxflow.run_state import RunState

    typed = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    recipe = typed.get("recipe") or _default_recipe()
    folder = Path(typed["hydra.run.dir"]) if "hydra.run.dir" in typed else _run_dir(recipe)
    if holds_record(folder):
        return None
    state = RunState(recipe, list(overrides))
    state.step = STAGE
    state.error = {"stage": STAGE, "type": "UnknownName", "message": message}
    state.settle()
    RunRecord(folder).write_json("summary.json", state.summary(folder))
    return folder


def _run_dir(recipe: str) -> Path:
    """The folder a run of `recipe` gets: the primary config's `hydra.run.dir`, resolved."""
    from hydra.core.utils import setup_globals

    setup_globals()  # `now`
    register_resolvers()  # `fxflow.slug`, `fxflow.run_id`
    template = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml").hydra.run, resolve=False)["dir"]
    return Path(str(OmegaConf.create({"recipe": recipe, "dir": template}).dir))


def _default_recipe() -> str:
    defaults = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml"), resolve=False).get("defaults", [])
    return next((str(d["recipe"]) for d in defaults if isinstance(d, dict) and "recipe" in d), "?")
