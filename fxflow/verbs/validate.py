"""Compose and validate recipes without running them: every problem with its key and the file that set it.

    fxflow validate partition_latency              # one recipe
    fxflow validate --all                          # every recipe (shipped and yours); CI runs this
    fxflow validate my_split devices=two_gpu       # with overrides, as a run would get them

Exit code 0 when every recipe is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console
from rich.markup import escape

from fxflow.choices import unknown_choices
from fxflow.compose import COMMAND_LINE, Composed, compose_with_origins
from fxflow.config.errors import ConfigError, ConfigProblem, did_you_mean
from fxflow.config.targets import NotImported, names_only
from fxflow.config.validate import resolve
from fxflow.paths import shown
from fxflow.plan import plan_run
from fxflow.requirements import RequirementMissing
from fxflow.recipes import recipe_files, unreadable_recipes


@dataclass
class Verdict:
    """One recipe checked: the composed config (None when composing failed) and (problem, file) pairs."""

    recipe: str
    composed: Composed | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (rendered problem, file that set the key)
    note: str = ""  # said of a valid recipe (e.g. that this machine would skip it)

    @property
    def valid(self) -> bool:
        return not self.problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("items", nargs="*", metavar="RECIPE|KEY=VALUE", help="recipes to check, and overrides for each")
    parser.add_argument("--all", action="store_true", help="check every recipe fxflow finds")


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = [item for item in args.items if "=" in item or item.startswith("~")]
    recipes = [item for item in args.items if item not in overrides]
    for item in [o for o in overrides if o.startswith("recipe=")]:  # a run's own syntax names recipes too
        overrides.remove(item)
        recipes += [name for name in item.split("=", 1)[1].split(",") if name]
    if args.all or not recipes:
        recipes = list(recipe_files())
    verdicts = [check_recipe(name, overrides) for name in recipes]
    for verdict in verdicts:
        if verdict.valid:
            files = ", ".join(verdict.composed.files[:1]) if verdict.composed else ""
            note = f"  [yellow]{escape(verdict.note)}[/]" if verdict.note else ""
            console.print(f"[green]valid[/]    {escape(verdict.recipe)}  [dim]{escape(files)}[/]{note}", highlight=False)
            continue
        console.print(f"[red]invalid[/]  {escape(verdict.recipe)}: {len(verdict.problems)} problem(s)", highlight=False)
        for text, where in verdict.problems:
            console.print(f"  - {escape(text)}" + (f"\n    [dim]in {escape(where)}[/]" if where else ""), highlight=False)
    bad = sum(not v.valid for v in verdicts)
    console.print(f"{len(verdicts) - bad} of {len(verdicts)} recipe(s) valid", highlight=False)
    return 1 if bad else 0


def check_recipe(recipe: str, overrides: list[str] = (), with_origins: bool = False) -> Verdict:
    """Compose and plan one recipe; never raises for a bad config. Where values came from is traced
    when asked for, or when there are problems to place."""
    verdict = Verdict(recipe)
    names = unknown_choices([f"recipe={recipe}", *overrides])
    if names:  # a misspelled recipe or option: the closest names, not Hydra's whole listing
        verdict.problems = [(text, "" if text.startswith("recipe=") else COMMAND_LINE) for text in names]
        return verdict
    try:
        verdict.composed = compose_with_origins(recipe, overrides, origins=with_origins)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = shown(Path(mark.name)) if mark is not None else ""
        verdict.problems.append((f"not valid YAML: {' '.join(str(exc).split())}", where))
        return verdict
    except (HydraException, OmegaConfBaseException) as exc:
        unreadable = unreadable_recipes().get(recipe)
        if unreadable:
            verdict.problems.append((f"the recipe file is not valid YAML: {unreadable[1]}", shown(unreadable[0])))
        elif (blamed := override_problem(exc, recipe, list(overrides))) is not None:
            verdict.problems.append(blamed)
        else:
            path = recipe_files().get(recipe)
            verdict.problems.append((" ".join(str(exc).split()), shown(path) if path else ""))
        return verdict
    try:
        with names_only():  # a trusted package's code runs when a recipe runs, never on review
            plan_run(resolve(verdict.composed.cfg), verdict.composed.files)
    except NotImported as exc:
        verdict.note = exc.message
    except RequirementMissing as exc:  # a valid recipe; this machine lacks what it needs to run
        verdict.note = f"this machine would skip the run: {exc}"
    except ConfigError as exc:
        if not verdict.composed.origins:
            verdict.composed = compose_with_origins(recipe, overrides)
        verdict.problems = [(p.render(), origin_of(p, verdict.composed)) for p in exc.problems]
    return verdict


def override_problem(exc: Exception, recipe: str | None, overrides: list[str]) -> tuple[str, str] | None:
    """Hydra's "Could not override 'KEY'" for a key the config does not have: blamed on the override
    that named it (not the recipe file), with the closest keys beside it."""
    match = re.search(r"Could not override '([^']+)'", str(exc))
    if match is None:
        return None
    key = match.group(1)
    typed = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), None)
    if typed is None:
        return None
    parent, _, name = key.rpartition(".")
    try:
        node = compose_with_origins(recipe, [o for o in overrides if o != typed], origins=False).cfg
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):  # the first name that is missing is the one to fix
            if not (isinstance(node, DictConfig) and part in node):
                parent, name = ".".join(parts[:depth]), part
                break
            node = node[part]
        siblings = list(node.keys()) if isinstance(node, DictConfig) else []
    except Exception:  # noqa: BLE001 - the hint is a courtesy; the problem stands without it
        siblings = []
    text = (f"{key}: no such key{' as ' + repr(name) if name != key.rpartition('.')[2] else ''}"
            f"{' under ' + parent if parent else ''}{did_you_mean(name, siblings)}; "
            f"+{key}=... adds a new one")
    return text, f"{COMMAND_LINE} ({typed})"


def origin_of(problem: ConfigProblem, composed: Composed) -> str:
    """The file (or command-line override) that set the key a problem is about."""
    return composed.origin(problem.path) if problem.path else ""
