"""Register every `recipes/NAME.yaml` as option NAME of Hydra's `recipe` group.

Recipes sit at the top level (one reviewed file per experiment) rather than inside
`conf/`, so they are stored into Hydra's ConfigStore at start-up with the `_global_`
package: their defaults lists (`override /devices: three_gpu`) apply, and a command-line
choice such as `devices=two_gpu` still wins.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from fxflow.paths import recipes_dir


def recipe_files(folder: Path | None = None) -> dict[str, Path]:
    """Map recipe name to its YAML file, sorted by name."""
    folder = folder or recipes_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


# Recipe file -> (mtime, size) when it was last stored: every compose registers the recipes, and
# parsing every file again each time grows with the number of recipes.
_STORED: dict[Path, tuple[int, int]] = {}


def register_recipes(folder: Path | None = None) -> list[str]:
    """Store each recipe file in the ConfigStore group `recipe` (again only when the file changed
    or the store lost it); return the names."""
    store = ConfigStore.instance()
    names = []
    for name, path in recipe_files(folder).items():
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if _STORED.get(path) != stamp or f"{name}.yaml" not in store.repo.get("recipe", {}):
            store.store(group="recipe", name=name, node=OmegaConf.load(path), package="_global_")
            _STORED[path] = stamp
        names.append(name)
    return names
