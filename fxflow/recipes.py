"""Recipes: `recipes/NAME.yaml` files, option NAME of Hydra's `recipe` group.

Recipes sit at the top level (one reviewed file per experiment) rather than inside `conf/`;
Hydra reads them through fxflow's recipe config source (hydra_plugins/fxflow_configs), with the
`_global_` package: their defaults lists (`override /devices: three_gpu`) apply, and a
command-line choice such as `devices=two_gpu` still wins. A user's recipes
(`fxflow_conf/recipes/`, `--config-dir DIR/recipes/`) come first, so a user's recipe of the
same name replaces the shipped one.

One broken recipe file must not break every command (`--help` included): a file that does
not load (YAML syntax), is not a mapping, has an unsafe name, or sets Hydra's own settings
(`hydra:` — run directory, logging, callbacks belong to the command, not to a recipe) is
served as a stand-in that holds only its name and the reason, with file and line. Choosing
it gives that message as a config problem; every other recipe works as before, and
`unreadable_recipes()` lists them for the review verbs.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fxflow.config.names import BROKEN_RECIPE_KEY, SAFE_NAME
from fxflow.paths import recipe_dirs


def recipe_files(folder: Path | None = None) -> dict[str, Path]:
    """Map recipe name to its YAML file, sorted by name (the user's file where both have one)."""
    found: dict[str, Path] = {}
    for directory in [folder] if folder else reversed(recipe_dirs()):
        found.update({p.stem: p for p in directory.glob("*.yaml")})
    return dict(sorted(found.items()))


def load_recipe(path: Path) -> DictConfig:
    """The recipe's config; ValueError with file and line when it cannot be used as one."""
    try:
        node = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML and OmegaConf errors alike
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise ValueError(f"{where}: {problem}") from None
    if not isinstance(node, DictConfig):
        raise ValueError(f"{path}: a recipe is a mapping (recipe:, transforms:, ...), not a {type(node).__name__}")
    if "hydra" in node:
        raise ValueError(f"{path}:{_line_of(path, 'hydra')}: a recipe may not set `hydra:` (run directory, logging "
                         "and callbacks belong to the command)")
    defaults = node.get("defaults") or []
    for entry in defaults if isinstance(defaults, (list, tuple)) or OmegaConf.is_list(defaults) else []:
        text = str(entry)
        if "hydra" in re.split(r"[\s:/@{}'\"]+", text):
            raise ValueError(f"{path}:{_line_of(path, 'hydra')}: a recipe's defaults may not choose Hydra's own "
                             f"groups ({text})")
    return node


def recipe_or_stand_in(path: Path | str) -> DictConfig:
    """The recipe at `path`, or, when it cannot be one, a stand-in holding its name and the reason
    (choosing it is then a config problem naming the file and line; see the module docstring)."""
    path = Path(path)
    try:
        if not SAFE_NAME.fullmatch(path.stem):
            raise ValueError(f"{path}: the file name is not a safe recipe name (a letter, then letters, digits, "
                             "'_' or '-')")
        return load_recipe(path)
    except ValueError as exc:
        return OmegaConf.create({"recipe": _safe(path.stem), BROKEN_RECIPE_KEY: str(exc)})


def unreadable_recipes() -> dict[str, tuple[Path, str]]:
    """Recipes whose file cannot be a recipe: name -> (file, why)."""
    found = {}
    for name, path in recipe_files().items():
        node = recipe_or_stand_in(path)
        if BROKEN_RECIPE_KEY in node:
            found[name] = (path, str(node[BROKEN_RECIPE_KEY]))
    return found


def _safe(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:63]
    return text if SAFE_NAME.fullmatch(text) else f"r{text}"[:64] if text else "broken"


def _line_of(path: Path, key: str) -> str:
    try:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(rf"\s*-?\s*.*\b{re.escape(key)}\b", line) and not line.lstrip().startswith("#"):
                return str(number)
    except OSError:
        pass
    return "?"
