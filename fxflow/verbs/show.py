"""Print a recipe's composed, validated config, each value with the file (or override) it came from.

    fxflow show partition_latency
    fxflow show partition_latency devices=two_gpu transforms.partition.mode=cost_aware

What a reviewer needs beside a pull request: the values a run would get, where each was set,
and every problem validation finds. Exit code 0 when the config is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape

from fxflow.compose import Composed
from fxflow.config.schema import memory_bytes
from fxflow.verbs.validate import check_recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="a recipe name (fxflow ls lists them)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides, as on a run's command line")


def run(args: argparse.Namespace, console: Console) -> int:
    verdict = check_recipe(args.recipe, args.overrides, with_origins=True)
    if verdict.composed is not None:
        composed = verdict.composed
        description = OmegaConf.select(composed.cfg, "description", default="")
        console.print(f"# {escape(args.recipe)}: {escape(str(description))}", highlight=False, soft_wrap=True)
        console.print(f"# composed from {escape(', '.join(composed.files))}", highlight=False, soft_wrap=True)
        container = OmegaConf.to_container(composed.cfg, resolve=True, throw_on_missing=False) \
            if verdict.valid else OmegaConf.to_container(composed.cfg, resolve=False)
        for line in annotated_yaml(container, composed):
            console.print(escape(line), highlight=False, soft_wrap=True)
    if verdict.valid:
        for key, written, size in memory_sizes(container):
            console.print(f"# {escape(key)} = {size:,} B (written {escape(written)})", highlight=False)
        console.print("# valid: the run would start with exactly these values", highlight=False)
        if verdict.note:
            console.print(f"# {escape(verdict.note)}", highlight=False)
        return 0
    console.print(f"[red]# {len(verdict.problems)} problem(s)[/]", highlight=False)
    for text, where in verdict.problems:
        console.print(f"#  - {escape(text)}" + (f"  {escape(f'[{where}]')}" if where else ""), highlight=False)
    return 1


def memory_sizes(node: Any, key: str = "") -> list[tuple[str, str, int]]:
    """(dotted key, as written, bytes understood) for every memory size written with a unit, so a
    reader sees that `20 KB` is 20,000 B and `20 KiB` 20,480 B before anything runs."""
    found: list[tuple[str, str, int]] = []
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{key}.{name}" if key else str(name)
            if name == "mem_bytes" and isinstance(value, str):
                found.append((path, value, memory_bytes(value)))
            else:
                found += memory_sizes(value, path)
    return found


def annotated_yaml(node: Any, composed: Composed, key: str = "", indent: int = 0) -> list[str]:
    """YAML lines with a `# file` comment; a section set whole by one file carries the comment once."""
    lines: list[str] = []
    for name, value in node.items():
        path = f"{key}.{name}" if key else str(name)
        pad = "  " * indent
        origin = composed.origin(path)
        whole = isinstance(value, dict) and value and len(set(_leaf_origins(value, path, composed))) == 1
        if isinstance(value, dict) and value and not whole:
            lines.append(f"{pad}{name}:")
            lines += annotated_yaml(value, composed, path, indent + 1)
        elif whole:
            lines.append(f"{pad}{name}:  # {origin}")
            lines += [f"{pad}  {line}" for line in yaml.safe_dump(value, sort_keys=False, width=1000,
                                                                        default_flow_style=None).splitlines()]
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}" + (f"  # {origin}" if origin else ""))
    return lines


def _leaf_origins(node: Any, key: str, composed: Composed) -> list[str]:
    if isinstance(node, dict) and node:
        found: list[str] = []
        for name, value in node.items():
            found += _leaf_origins(value, f"{key}.{name}", composed)
        return found
    return [composed.origin(key)]


def _scalar(value: Any) -> str:
    """A value as YAML writes it inline: 33000000, 'true', [0, 1], {}."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
