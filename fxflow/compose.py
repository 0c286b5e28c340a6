"""Compose a recipe's config the way the `fxflow` command does, without starting a Hydra app.

Tests and the review verbs use this to build a config in-process; the Hydra application uses
`config_files` to name the files a job's config came from in error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from fxflow.paths import conf_dir, recipes_dir
from fxflow.recipes import register_recipes


def compose_recipe(recipe: str | None = None, overrides: Sequence[str] = ()) -> tuple[DictConfig, list[str]]:
    """(the composed job config without its `hydra` node, the config files it came from)."""
    register_recipes()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        extra = [f"recipe={recipe}"] if recipe else []
        cfg = compose(config_name="config", overrides=[*extra, *overrides], return_hydra_config=True)
    files = config_files(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, files


def config_files(choices: Mapping[str, Any]) -> list[str]:
    """The files a job's config came from, for error messages (relative to the working folder when inside it)."""
    files = []
    for group, option in choices.items():
        if group.startswith("hydra") or option is None:
            continue
        group = group.split("@")[0]  # `transform@transforms.partition` lives in conf/transform
        folder = recipes_dir() if group == "recipe" else conf_dir() / group
        path = folder / f"{option}.yaml"
        try:
            files.append(str(path.relative_to(Path.cwd())))
        except ValueError:
            files.append(str(path))
    return files
