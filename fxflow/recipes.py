"""Register every `recipes/NAME.yaml` as option NAME of Hydra's `recipe` group.

Recipes sit at the top level (one reviewed file per experiment) rather than inside
`conf/`, so they are stored into Hydra's ConfigStore at start-up with the `_global_`
package: their defaults lists (`override /devices: three_gpu`) apply, and a command-line
choice such as `devices=two_gpu` still wins. A user's recipes (`fxflow_conf/recipes/`,
`--config-dir DIR/recipes/`) are stored after the shipped ones, so a user's recipe of the
same name replaces the shipped one.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from fxflow.paths import recipe_dirs

_unreadable: dict[str, tuple[Path, str]] = {}
_registered: tuple = ()  # (name, file, modification time) of what the ConfigStore holds now


def recipe_files(folder: Path | None = None) -> dict[str, Path]:
    """Map recipe name to its YAML file, sorted by name (the user's file where both have one)."""
    found: dict[str, Path] = {}
    for directory in [folder] if folder else reversed(recipe_dirs()):
        found.update({p.stem: p for p in directory.glob("*.yaml")})
    return dict(sorted(found.items()))


def register_recipes(folder: Path | None = None) -> list[str]:
    """Store each recipe file in the ConfigStore group `recipe`; return the names.

    A file that is not valid YAML is left out and remembered (`unreadable_recipes`), so one
    broken user file never stops the others from composing.
    """
    global _registered
    files = recipe_files(folder)
    key = tuple((name, str(path), path.stat().st_mtime_ns) for name, path in files.items())
    store = ConfigStore.instance()
    if key == _registered and "recipe" in store.repo:
        return [name for name in files if name not in _unreadable]
    store.repo.pop("recipe", None)  # a user folder of an earlier call (another working folder) no longer counts
    _unreadable.clear()
    names = []
    for name, path in files.items():
        try:
            node = OmegaConf.load(path)
        except Exception as exc:  # noqa: BLE001 - yaml and OmegaConf raise several kinds
            _unreadable[name] = (path, " ".join(str(exc).split()))
            continue
        store.store(group="recipe", name=name, node=node, package="_global_")
        names.append(name)
    _registered = key
    return names


def unreadable_recipes() -> dict[str, tuple[Path, str]]:
    """Recipes the last `register_recipes` could not read: name -> (file, why)."""
    return dict(_unreadable)
