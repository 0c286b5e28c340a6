"""Compose a recipe's config the way the `fxflow` command does, without starting a Hydra app, and
say where each value came from.

Tests and the review verbs use `compose_recipe` / `compose_with_origins` in-process; the Hydra
application uses `config_files` to name the files a job's config came from in error messages.
User folders (./fxflow_conf, --config-dir) are on the search path ahead of the shipped configs
(see fxflow.paths), and every file named here is the one actually read.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from fxflow.bounded_load import load_yaml
from fxflow.config.hydra_settings import hydra_problems, searchpath_problems
from fxflow.config.targets import TargetPolicy
from fxflow.config.trust import trusted_setup_lines
from fxflow.paths import conf_dir, config_dirs, recipes_dir, search_dirs, shown, user_config_dirs
from fxflow.recipes import recipe_files

COMMAND_LINE = "command line"
FOLDER_SCHEMES = ("file", "fxflow-file")  # Hydra's folders, and the user's (read within fxflow's limits)


@dataclass
class Composed:
    """A composed job config (without Hydra's node), the files it was read from, and per dotted
    key the file (or command-line override) that set it."""

    cfg: DictConfig
    files: list[str]
    origins: dict[str, str] = field(default_factory=dict)
    used: list[tuple[str, Path]] = field(default_factory=list)  # (config path such as devices/two_gpu, file)

    def origin(self, key: str) -> str:
        """Where `key` came from: its own origin, else those of the keys under it, else that of the
        nearest enclosing key that was set as a whole."""
        if key in self.origins:
            return self.origins[key]
        below = list(dict.fromkeys(v for k, v in self.origins.items() if k.startswith(key + ".")))
        if below:
            return ", ".join(below)
        parts = key.split(".")
        for end in range(len(parts) - 1, 0, -1):
            found = self.origins.get(".".join(parts[:end]))
            if found:
                return found
        return ""


@contextmanager
def _hydra(dirs: Sequence[str | Path] | None) -> Iterator[Any]:
    """An initialised Hydra (shipped configs plus the user's folders); yields its config loader."""
    with config_dirs(dirs) if dirs is not None else _nothing():
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            yield GlobalHydra.instance().config_loader()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def compose_recipe(recipe: str | None = None, overrides: Sequence[str] = (),
                   dirs: Sequence[str | Path] | None = None) -> tuple[DictConfig, list[str]]:
    """(the composed job config without its `hydra` node, the config files it came from)."""
    composed = compose_with_origins(recipe, overrides, dirs, origins=False)
    return composed.cfg, composed.files


def compose_with_origins(recipe: str | None = None, overrides: Sequence[str] = (),
                         dirs: Sequence[str | Path] | None = None, origins: bool = True) -> Composed:
    """Compose like `compose_recipe`; with `origins`, also trace every value to its file or override.

    `dirs` are extra user config folders (as --config-dir gives them), ahead of ./fxflow_conf.
    """
    all_overrides = [*([f"recipe={recipe}"] if recipe else []), *overrides]
    with _hydra(dirs) as loader:
        cfg = compose(config_name="config", overrides=all_overrides, return_hydra_config=True)
        files = config_files(cfg.hydra.runtime.choices, cfg.hydra.runtime.config_sources)
        traced, used = _origins(loader, all_overrides) if origins else ({}, [])
    with open_dict(cfg):
        del cfg["hydra"]
    return Composed(cfg, files, traced, used)


def hydra_settings_problems(overrides: Sequence[str]) -> list[str]:
    """What is wrong with the `hydra` node a launch with these command-line overrides would get
    (fxflow.config.hydra_settings), each problem with the file or override that set its key.

    Run before Hydra starts: Hydra builds callbacks, launcher and logging from that node before
    any job runs. A sweep reads other files per job, so each option of a swept group (from the
    command line or `hydra.sweeper.params`) is composed too; values under `hydra` cannot be swept.
    Composition errors propagate (Hydra reports them the same way when it composes). The shipped
    configs alone need no check (nor composing): only the user's folders and overrides can differ.
    """
    policy = TargetPolicy()
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    if not user_config_dirs() and not any(_may_change_hydra(o) for o in parsed):
        return []
    early = _searchpath_before_composing(parsed)
    if early:
        return early
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeps = [o for o in parsed if o.is_sweep_override()]
    found: list[str] = []
    with _hydra(None) as loader:
        variants = [fixed]
        while variants:
            variant = variants.pop(0)
            cfg = compose(config_name="config", overrides=variant, return_hydra_config=True)
            hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
            if variant is fixed:  # the sweeps a launch would run, and so the files it would read
                params = hydra.get("sweeper", {}).get("params") or {}
                sweeps += [o for o in parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
                           if o.is_sweep_override()]
                variants += _swept_choices(loader, sweeps, fixed)
            problems = hydra_problems(hydra, policy, trusted_setup_lines())
            if problems:
                composed = Composed(cfg, [], _origins(loader, variant, hydra_too=True)[0])
            for problem in problems:
                origin = composed.origin(problem.path) or "Hydra's own configs or a hydra/ group"
                text = f"{problem.render()} [set by {origin}]"
                if text not in found:
                    found.append(text)
    return found


# Hydra settings whose plain value (a folder, a switch) builds and imports nothing.
PLAIN_HYDRA_KEYS = frozenset({"hydra.run.dir", "hydra.sweep.dir", "hydra.job.chdir", "hydra.verbose"})


def _may_change_hydra(override: Any) -> bool:
    """Whether an override may change what Hydra builds or imports (so the `hydra` node needs a check)."""
    if not override.key_or_group.startswith("hydra"):
        return False
    return override.key_or_group not in PLAIN_HYDRA_KEYS or isinstance(override.value(), (dict, list))


def _searchpath_before_composing(parsed: list[Any]) -> list[str]:
    """`hydra.searchpath` from an override or the user's primary config (the first config.yaml in
    their folders), read as plain YAML: Hydra would import a pkg:// entry while composing."""
    for override in parsed:
        if override.key_or_group == "hydra.searchpath":
            return [f"{p.render()} [set by {COMMAND_LINE} ({override.input_line})]"
                    for p in searchpath_problems(override.value())]
    primary = next((folder / "config.yaml" for folder in user_config_dirs() if (folder / "config.yaml").is_file()), None)
    if primary is None:
        return []
    try:  # under the same caps as every user file (size, aliases, nesting)
        data = load_yaml(primary)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return []  # refused or unreadable: Hydra's read of the file (fxflow's config source) names it
    hydra = data.get("hydra") if isinstance(data, dict) else None
    searchpath = hydra.get("searchpath") if isinstance(hydra, dict) else None
    return [f"{p.render()} [set by {shown(primary)}]" for p in searchpath_problems(searchpath)]


def _swept_choices(loader: Any, sweeps: list[Any], fixed: list[str]) -> list[list[str]]:
    """One override list per option of each swept config group whose file is in a user folder
    (shipped files and recipes set nothing under `hydra`; the recipe source refuses a recipe that does)."""
    variants = []
    for override in sweeps:
        group = override.key_or_group
        if group == "recipe" or not loader.repository.group_exists(group):
            continue
        value = override.value()
        options = (value.filter(loader.get_group_options(group)) if hasattr(value, "filter")
                   else list(override.sweep_string_iterator()))
        variants += [[*fixed, f"{override.get_key_element()}={option}"] for option in options
                     if any((folder / group / f"{option}.yaml").is_file() for folder in user_config_dirs())]
    return variants


def config_files(choices: Mapping[str, Any], sources: Iterable[Any] | None = None) -> list[str]:
    """The files a job's config came from, for error messages, as the search path finds them.

    `sources` are Hydra's `runtime.config_sources` (the search path of the job); without them,
    this process's search path (fxflow.paths.search_dirs).
    """
    folders = search_dirs() if sources is None else [Path(s.path) for s in sources if s.schema in FOLDER_SCHEMES]
    files = []
    for group, option in choices.items():
        if group.startswith("hydra") or option is None:
            continue
        group = group.split("@")[0]  # `transform@transforms.partition` lives in transform/
        if group == "recipe":
            candidates = [f / "recipes" / f"{option}.yaml" for f in folders] + [recipes_dir() / f"{option}.yaml"]
        else:
            candidates = [f / group / f"{option}.yaml" for f in folders] or [conf_dir() / group / f"{option}.yaml"]
        files.append(shown(next((c for c in candidates if c.is_file()), candidates[-1])))
    return files


def _origins(loader: Any, overrides: Sequence[str],
             hydra_too: bool = False) -> tuple[dict[str, str], list[tuple[str, Path]]]:
    """Replay composition file by file: the last file (or override) to set a key is its origin.
    Also returns every config read, in composition order, with its file. Hydra's own config
    groups are left out unless `hydra_too`."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    chosen_by = {f"{o.key_or_group}/{o.value()}": o.input_line for o in parsed
                 if not o.is_sweep_override() and o.key_or_group != "recipe"
                 and loader.repository.group_exists(o.key_or_group)}
    origins: dict[str, str] = {}
    used: list[tuple[str, Path]] = []
    for default in loader.compute_defaults_list("config", list(overrides), RunMode.RUN).defaults:
        path = default.config_path
        if path is None or (not hydra_too and (path.startswith("hydra/") or (default.package or "").startswith("hydra"))):
            continue
        loaded = loader.repository.load_config(path)
        if loaded is None:
            continue
        node = OmegaConf.to_container(loaded.config, resolve=False)
        node.pop("defaults", None)
        file = _file_of(path, loaded.path)
        where = shown(file) if file else path
        if file:
            used.append((path, file))
        if path in chosen_by:
            where += f" (chosen by {chosen_by[path]})"
        for key in _leaf_keys(node, default.package or ""):
            _set(origins, key, where)
    for override in parsed:
        if loader.repository.group_exists(override.key_or_group):
            continue
        key = override.key_or_group
        if override.is_delete():
            _set(origins, key, None)
            continue
        where = f"{COMMAND_LINE} ({override.input_line})"
        value = override.value()
        for leaf in _leaf_keys(value, key) if isinstance(value, dict) else [key]:
            _set(origins, leaf, where)
    return origins, used


def _file_of(config_path: str, source: str) -> Path | None:
    """The file behind a loaded config: `file://` sources are folders; recipes are found by name."""
    group, _, name = config_path.rpartition("/")
    if group == "recipe":
        return recipe_files().get(name)
    scheme, _, folder = source.partition("://")
    if scheme in FOLDER_SCHEMES:
        return Path(folder) / f"{config_path}.yaml"
    return None


def _leaf_keys(node: Any, prefix: str) -> list[str]:
    """Dotted keys of the leaves of a nested mapping (lists and empty mappings are leaves). A `???`
    leaf only declares its key (hydra/config declares `hydra.launcher` after the launcher file set it),
    so it is no origin."""
    if isinstance(node, dict) and node:
        keys = []
        for key, value in node.items():
            keys += _leaf_keys(value, f"{prefix}.{key}" if prefix else str(key))
        return keys
    return [prefix] if prefix and node != "???" else []


def _set(origins: dict[str, str], key: str, where: str | None) -> None:
    """A key set as a whole replaces what was known about the keys under it; a key set inside
    a mapping that was set as a whole (`latency_model: null`, then its `_target_`) replaces that."""
    for known in [k for k in origins if k.startswith(key + ".")]:
        del origins[known]
    parts = key.split(".")
    for end in range(1, len(parts)):
        origins.pop(".".join(parts[:end]), None)
    if where is None:
        origins.pop(key, None)
    else:
        origins[key] = where
