"""Copy a recipe and every config it uses into a folder of yours, laid out as fxflow finds it.

    fxflow cp partition_latency fxflow_conf                 # ./fxflow_conf is found automatically
    fxflow cp partition_latency fxflow_conf --name my_split # the copy becomes recipe my_split
    fxflow cp sparse_nn ~/configs && fxflow --config-dir ~/configs validate sparse_nn

The recipe goes to DEST/recipes/, each group file it composes (model, devices, transforms,
latency, ...) to DEST/GROUP/. Files in your folder replace shipped ones of the same group and
name, so edit the copies freely. Existing files are kept unless --force. `--name` is a plain
name (letters, digits, `_`, `-`); every write stays inside DEST and never goes through a
symbolic link (fxflow.record.confined), --force or not.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fxflow.compose import compose_with_origins
from fxflow.paths import USER_FOLDER, shown
from fxflow.record.confined import write_inside

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")


class CopyRefused(Exception):
    """A name or a path in DEST that a copy must not use; the message names it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe to copy (fxflow ls lists them)")
    parser.add_argument("dest", nargs="?", default=USER_FOLDER, help=f"your config folder (default ./{USER_FOLDER})")
    parser.add_argument("--name", help="name of the copied recipe (default: the same name)")
    parser.add_argument("--force", action="store_true", help="overwrite files already in DEST")


def run(args: argparse.Namespace, console: Console) -> int:
    dest = Path(args.dest)
    try:
        copied = copy_recipe(args.recipe, dest, args.name, args.force)
    except CopyRefused as exc:
        console.print(f"[red]fxflow cp:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    for source, target, done in copied:
        state = "copied " if done else "kept   "
        console.print(f"{state} {escape(shown(target))}  [dim]from {escape(shown(source))}[/]", highlight=False)
    name = args.name or args.recipe
    found = dest.resolve() == (Path.cwd() / USER_FOLDER).resolve()
    flag = "" if found else f"--config-dir {shown(dest)} "
    console.print(f"next: fxflow {flag}validate {name}   then   python -m fxflow {flag}recipe={name}", highlight=False)
    return 0


def copy_recipe(recipe: str, dest: Path, name: str | None = None, force: bool = False) -> list[tuple[Path, Path, bool]]:
    """Copy the recipe (renamed to `name`) and its group files; returns (source, target, copied?).
    CopyRefused for a `name` that is not a plain name, or a link in DEST where a copy would go."""
    if name is not None and not PLAIN_NAME.fullmatch(name):
        raise CopyRefused(f"--name {name!r} is not a recipe name: use letters, digits, '_' and '-' (no '/', no '..')")
    composed = compose_with_origins(recipe, [])
    done = []
    for config_path, source in composed.used:
        group, _, option = config_path.rpartition("/")
        if not group:
            continue  # the primary config.yaml stays fxflow's
        relative = f"recipes/{name or option}.yaml" if group == "recipe" else f"{group}/{option}.yaml"
        target = dest / relative
        if os.path.lexists(target) and (not force or target.resolve() == source.resolve()):
            done.append((source, target, False))
            continue
        data = source.read_bytes()
        if group == "recipe" and name and name != option:
            data = re.sub(rf"^recipe:\s*{re.escape(option)}\s*$", f"recipe: {name}", data.decode("utf-8"),
                          flags=re.M).encode("utf-8")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            write_inside(dest, relative, data)
        except OSError as exc:
            raise CopyRefused(f"cannot write {relative} in {dest} (DEST): a symbolic link or a file is in the way "
                              f"({exc.strerror or exc}); fxflow cp writes only real files and folders inside DEST, "
                              "--force included") from exc
        done.append((source, target, True))
    return done
