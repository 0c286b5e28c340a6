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


_stored: dict[str, tuple[Path, int]] = {}  # recipe name -> (file, modification time) last stored


def register_recipes(folder: Path | None = None) -> list[str]:
    """Store each recipe file in the ConfigStore group `recipe`; return the names. A file already
    stored and unchanged since is not parsed again (every in-process compose calls this)."""
    store = ConfigStore.instance()
    stored = store.repo.get("recipe", {})
    names = []
    for name, path in recipe_files(folder).items():
        version = (path, path.stat().st_mtime_ns)
        if _stored.get(name) != version or f"{name}.yaml" not in stored:
            store.store(group="recipe", name=name, node=OmegaConf.load(path), package="_global_")
            _stored[name] = version
        names.append(name)
    return names
