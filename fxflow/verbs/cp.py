"""Copy a recipe and every config it uses into a folder of yours, laid out as fxflow finds it.

    fxflow cp partition_latency fxflow_conf                 # ./fxflow_conf is found automatically
    fxflow cp partition_latency fxflow_conf --name my_split # the copy becomes recipe my_split
    fxflow cp sparse_nn ~/configs && fxflow --config-dir ~/configs validate sparse_nn

The recipe goes to DEST/recipes/, each group file it composes (model, devices, transforms,
latency, ...) to DEST/GROUP/. Files in your folder replace shipped ones of the same group and
name, so edit the copies freely. Existing files are kept unless --force.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fxflow.compose import compose_with_origins
from fxflow.paths import USER_FOLDER, shown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe to copy (fxflow ls lists them)")
    parser.add_argument("dest", nargs="?", default=USER_FOLDER, help=f"your config folder (default ./{USER_FOLDER})")
    parser.add_argument("--name", help="name of the copied recipe (default: the same name)")
    parser.add_argument("--force", action="store_true", help="overwrite files already in DEST")


def run(args: argparse.Namespace, console: Console) -> int:
    dest = Path(args.dest)
    copied = copy_recipe(args.recipe, dest, args.name, args.force)
    for source, target, done in copied:
        state = "copied " if done else "kept   "
        console.print(f"{state} {escape(shown(target))}  [dim]from {escape(shown(source))}[/]", highlight=False)
    name = args.name or args.recipe
    found = dest.resolve() == (Path.cwd() / USER_FOLDER).resolve()
    flag = "" if found else f"--config-dir {shown(dest)} "
    console.print(f"next: fxflow {flag}validate {name}   then   python -m fxflow {flag}recipe={name}", highlight=False)
    return 0


def copy_recipe(recipe: str, dest: Path, name: str | None = None, force: bool = False) -> list[tuple[Path, Path, bool]]:
    """Copy the recipe (renamed to `name`) and its group files; returns (source, target, copied?)."""
    composed = compose_with_origins(recipe, [])
    done = []
    for config_path, source in composed.used:
        group, _, option = config_path.rpartition("/")
        if not group:
            continue  # the primary config.yaml stays fxflow's
        if group == "recipe":
            target = dest / "recipes" / f"{name or option}.yaml"
        else:
            target = dest / group / f"{option}.yaml"
        if target.resolve() == source.resolve() or (target.exists() and not force):
            done.append((source, target, False))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if group == "recipe" and name and name != option:
            text = re.sub(rf"^recipe:\s*{re.escape(option)}\s*$", f"recipe: {name}", source.read_text(), flags=re.M)
            target.write_text(text)
        else:
            shutil.copyfile(source, target)
        done.append((source, target, True))
    return done
