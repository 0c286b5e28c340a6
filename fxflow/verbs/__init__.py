"""`fxflow VERB ...`: review verbs beside the Hydra run entry (`fxflow key=value ...`).

    fxflow ls                                   recipes, and each config group's options
    fxflow show partition_latency devices=two_gpu   the composed, validated config, value by value with its file
    fxflow validate --all                       compose and validate every recipe without running one
    fxflow cp partition_latency fxflow_conf     copy a recipe and the configs it uses into your folder
    fxflow diff outputs/A outputs/B             two run records side by side
    fxflow runs                                 the latest records with their status
    fxflow --version

One module per verb; each has `add_arguments(parser)` and `run(args, console) -> exit code`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Sequence

from rich.console import Console

import fxflow
from fxflow.reports.console import make_console

VERBS = {
    "ls": "list recipes (description, torch test, devices) and every config group's options",
    "show": "print a recipe's composed, validated config with the file each value came from",
    "validate": "compose and validate recipes without running them; every problem with its key and file",
    "cp": "copy a recipe and the configs it uses into a folder of yours (default ./fxflow_conf)",
    "diff": "compare two run records: headline figures first, then checks and config values",
    "runs": "the latest run and sweep records, newest first, with status and folder",
}
VERSION_FLAGS = ("--version", "-V")


def is_verb(argv: Sequence[str]) -> bool:
    """Whether a command line is for a verb rather than for the Hydra run entry."""
    return bool(argv) and (argv[0] in VERBS or argv[0] in VERSION_FLAGS)


def version_text() -> str:
    """fxflow's version, with the torch and Hydra it runs on (read without importing torch)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"fxflow {fxflow.__version__} (torch {installed('torch')}, hydra-core {installed('hydra-core')})"


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The verbs' parser. With `chosen`, only that verb's module is imported for its arguments (the
    others are listed by their summary): `fxflow ls` then never imports torch, which `show` and
    `validate` need to judge targets."""
    root = argparse.ArgumentParser(prog="fxflow", description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = root.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, summary in VERBS.items():
        if chosen is not None and name != chosen:
            verbs.add_parser(name, help=summary)
            continue
        module = importlib.import_module(f"fxflow.verbs.{name}")
        sub = verbs.add_parser(name, help=summary, description=module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
    return root


def run_verb(argv: Sequence[str], console: Console | None = None) -> int:
    """Run `fxflow VERB ARGS...`; returns the exit code."""
    console = console or make_console()
    if argv[0] in VERSION_FLAGS:
        console.print(version_text(), highlight=False)
        return 0
    args = parser(argv[0]).parse_args(list(argv))
    return importlib.import_module(f"fxflow.verbs.{args.verb}").run(args, console)
