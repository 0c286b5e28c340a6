"""Recipes: `recipes/NAME.yaml` files, option NAME of Hydra's `recipe` group.

Recipes sit at the top level (one reviewed file per experiment) rather than inside `conf/`;
Hydra reads them through fxflow's recipe config source (hydra_plugins/fxflow_configs), with the
`_global_` package: their defaults lists (`override /devices: three_gpu`) apply, and a
command-line choice such as `devices=two_gpu` still wins. A user's recipes
(`fxflow_conf/recipes/`, `--config-dir DIR/recipes/`) come first, so a user's recipe of the
same name replaces the shipped one.

One broken recipe file must not break every command (`--help` included): a file that does
not load (YAML syntax, or over fxflow.bounded_load's size, alias and nesting limits), is empty
or not a mapping, has an unsafe name, sets Hydra's own settings (`hydra:` — run directory,
logging, callbacks belong to the command, not to a recipe), or whose defaults list leads back
to itself (Hydra would recurse without end) is served as a stand-in that holds only its name
and the reason, with file and line. Choosing
it gives that message as a config problem; every other recipe works as before, and
`unreadable_recipes()` lists them for the review verbs.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fxflow.bounded_load import load_yaml
from fxflow.config.names import BROKEN_RECIPE_KEY, SAFE_NAME
from fxflow.paths import recipe_dirs


def recipe_files(folder: Path | None = None) -> dict[str, Path]:
    """Map recipe name to its YAML file, sorted by name (the user's file where both have one)."""
    found: dict[str, Path] = {}
    for directory in [folder] if folder else reversed(recipe_dirs()):
        found.update({p.stem: p for p in directory.glob("*.yaml")})
    return dict(sorted(found.items()))


def load_recipe(path: Path) -> DictConfig:
    """The recipe's config; ValueError with file and line when it cannot be used as one (within
    the size and alias limits of fxflow.bounded_load; a defaults list that leads back to the
    recipe itself is refused here, before Hydra would recurse without end)."""
    node = _load_mapping(path)
    if "hydra" in node:
        raise ValueError(f"{path}:{_line_of(path, 'hydra')}: a recipe may not set `hydra:` (run directory, logging "
                         "and callbacks belong to the command)")
    for text in _defaults_entries(node):
        if "hydra" in re.split(r"[\s:/@{}'\"]+", text):
            raise ValueError(f"{path}:{_line_of(path, 'hydra')}: a recipe's defaults may not choose Hydra's own "
                             f"groups ({text})")
    cycle = _recipe_cycle(path, node)
    if cycle:
        raise ValueError(f"{path}:{_line_of(path, 'defaults')}: the defaults list includes the recipe itself "
                         f"({' -> '.join(cycle)}), which would never end; include only recipes that do not lead back")
    return node


def _load_mapping(path: Path) -> DictConfig:
    """The file as a mapping, in OmegaConf's YAML dialect, or ValueError saying why not."""
    value = load_yaml(path)  # a ValueError naming the file and line (syntax, size, aliases)
    if value is None:
        raise ValueError(f"{path}: the file is empty (or null); a recipe is a mapping (recipe:, transforms:, ...)")
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a recipe is a mapping (recipe:, transforms:, ...), not a {type(value).__name__}")
    try:
        return OmegaConf.create(value)
    except Exception as exc:  # noqa: BLE001 - OmegaConf's own refusals (a key it cannot hold)
        raise ValueError(f"{path}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None


def _defaults_entries(node: DictConfig) -> list[str]:
    defaults = node.get("defaults") or []
    return [str(entry) for entry in defaults] if OmegaConf.is_list(defaults) or isinstance(defaults, list) else []


def _included_recipes(node: DictConfig) -> list[str]:
    """Recipes this recipe's defaults list includes: `- NAME` (relative to the recipe group),
    `- /recipe/NAME`, or `- /recipe: NAME` / `- /recipe@PACKAGE: NAME`; overrides choose, they do
    not include."""
    found = []
    defaults = node.get("defaults") or []
    for entry in defaults if OmegaConf.is_list(defaults) else []:
        if isinstance(entry, str):
            name = entry.removeprefix("optional ").strip()
            if name.startswith("/recipe/"):
                found.append(name.removeprefix("/recipe/"))
            elif name != "_self_" and "/" not in name:
                found.append(name)
        elif OmegaConf.is_dict(entry) and len(entry) == 1:
            key, value = next(iter(entry.items()))
            words = str(key).split()
            if words and "override" not in words and words[-1].split("@")[0] == "/recipe":
                found += [str(v) for v in (value if OmegaConf.is_list(value) else [value]) if isinstance(v, str)]
    return found


def _recipe_cycle(path: Path, node: DictConfig) -> list[str]:
    """The chain of recipe names from this recipe back to itself through defaults lists, or []."""
    files = recipe_files()
    start = path.stem
    chain, seen = [start], set()

    def walk(node: DictConfig) -> bool:
        for included in _included_recipes(node):
            chain.append(included)
            if included == start:
                return True
            file = files.get(included)
            if included not in seen and file is not None:
                seen.add(included)
                try:
                    child = _load_mapping(file)
                except ValueError:
                    child = None  # its own problem; choosing it says so
                if child is not None and walk(child):
                    return True
            chain.pop()
        return False

    return chain if walk(node) else []


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
