"""List the recipes and every config group's options, with their one-line purpose.

    fxflow ls                  # everything
    fxflow ls model devices    # only these groups (and no recipes)

Options in your own folders (./fxflow_conf, --config-dir) are listed with the file they come
from; they replace shipped options of the same name.
"""

from __future__ import annotations

import argparse
from io import StringIO
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxflow.choices import group_options
from fxflow.paths import conf_dir, recipes_dir, search_dirs, shown
from fxflow.recipes import load_recipe, recipe_files

# Groups a run chooses with GROUP=OPTION, and groups recipes place (with the syntax that does it).
CHOSEN = ("model", "devices", "tracer", "equivalence")
PLACED = {"transform": "in a recipe's defaults: - /transform@transforms.NAME: OPTION",
          "latency": "latency@transforms.partition.latency_model=OPTION (cost_aware needs one)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("groups", nargs="*", help="only these groups (model, devices, tracer, ...)")


def run(args: argparse.Namespace, console: Console) -> int:
    if not args.groups:
        console.print(recipe_table())
    for group in args.groups or [*CHOSEN, *PLACED]:
        console.print(group_table(group))
    return 0


def overview_text(width: int = 100) -> str:
    """What `fxflow ls` prints, as plain text (for `--help`)."""
    buffer = StringIO()
    run(argparse.Namespace(groups=[]), Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue().rstrip()


def recipe_table() -> Table:
    table = Table(title="recipes: python -m fxflow recipe=NAME   (fxflow show NAME for the whole config)",
                  title_justify="left", show_edge=False, pad_edge=False, show_header=False)
    table.add_column("recipe", no_wrap=True)
    table.add_column("what it shows", ratio=1)
    default_devices = _primary_choice("devices")
    for name, path in recipe_files().items():
        try:
            recipe = OmegaConf.to_container(load_recipe(path), resolve=False)
        except Exception as exc:  # noqa: BLE001 - one broken file must not hide the rest
            table.add_row(escape(name), f"[red]unreadable[/]: {escape(str(exc).splitlines()[0])}")
            continue
        tests = ", ".join(recipe.get("reproduces") or [])
        devices = _override(recipe, "devices") or default_devices
        words = f"{recipe.get('description') or ''} [dim]({escape(tests + '; ' if tests else '')}devices={escape(devices)})[/]"
        yours = "" if path.parent == recipes_dir() else f"\n[dim]{escape(shown(path))}[/]"
        table.add_row(escape(name) + yours, words)
    return table


def group_table(group: str) -> Table:
    how = f"{group}=OPTION" if group in CHOSEN else PLACED.get(group, f"{group}=OPTION")
    table = Table(title=f"{group}/: {how}", title_justify="left", show_edge=False, pad_edge=False, show_header=False)
    table.add_column("option", no_wrap=True)
    table.add_column("purpose", ratio=1)
    for name, path in group_options(group).items():
        where = "" if path.parent.parent == conf_dir() else f" [dim]{escape(shown(path))}[/]"
        table.add_row(escape(name) + where, escape(purpose(path)))
    return table


def purpose(path: Path) -> str:
    """A config file's one-line purpose: the first sentence of its leading comment."""
    words = []
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            head = stream.read(1 << 16)  # the leading comment; a huge file is not read whole
    except OSError as exc:
        return f"(unreadable: {exc.strerror or type(exc).__name__})"
    for line in head.splitlines():
        text = line.strip()
        if not text.startswith("#") or text.startswith("#  ") or text.startswith("# @package"):
            if words or (text and not text.startswith("#")):
                break
            continue
        words.append(text.lstrip("#").strip())
    joined = " ".join(words)
    end = joined.find(". ")
    return joined[: end + 1] if end >= 0 else joined


def _override(recipe: dict[str, Any], group: str) -> str | None:
    """The option a recipe's defaults list picks for `group` (`- override /devices: two_gpu`)."""
    for entry in recipe.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override", "").strip().lstrip("/") == group:
                    return str(value)
    return None


def _primary_choice(group: str) -> str:
    primary = OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml"), resolve=False)
    return _override({"defaults": primary.get("defaults", [])}, group) or "-"
