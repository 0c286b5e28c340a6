"""List the latest run and sweep records, newest first, with their status and folder.

    fxflow runs                    # the last 10 under ./outputs
    fxflow runs -n 30              # more
    fxflow runs --outputs elsewhere/outputs

A sweep is one row (its jobs' statuses counted); `fxflow diff` takes two of the folders listed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fxflow.bounded_load import load_record
from fxflow.paths import shown

_STYLE = {"passed": "green", "skipped": "yellow", "running": "yellow", "interrupted": "yellow"}


@dataclass(frozen=True)
class Listed:
    """One record found: when it was last written, what it ran, how it ended, where it is."""

    written: float
    recipe: str
    status: str
    folder: Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=10, metavar="N", help="how many records (default 10)")
    parser.add_argument("--outputs", type=Path, default=Path("outputs"), help="the records' folder (default ./outputs)")


def run(args: argparse.Namespace, console: Console) -> int:
    found = latest(args.outputs, max(args.n, 1))
    if not found:
        console.print(f"no run records under {escape(str(args.outputs))}", highlight=False)
        return 0
    console.print(f"latest records under {escape(str(args.outputs))}, newest first:", highlight=False)
    for item in found:  # the folder on a line of its own, never wrapped: it is what one copies
        colour = _STYLE.get(item.status.split()[0], "red")
        console.print(f"{datetime.fromtimestamp(item.written):%m-%d %H:%M:%S}  [{colour}]{escape(item.status)}[/]  "
                      f"{escape(item.recipe)}", highlight=False)
        console.print(f"  {escape(shown(item.folder))}", highlight=False, soft_wrap=True)
    return 0


def latest(outputs: Path, count: int) -> list[Listed]:
    """The newest `count` records: single runs (`outputs/DATE/RUN/summary.json`) and sweeps
    (`outputs/multirun/DATE/SWEEP/sweep_summary.json`, or a sweep still at work: its jobs' summaries)."""
    items = [_run(path) for path in outputs.glob("*/*/summary.json") if path.parts[-4:-3] != ("multirun",)]
    sweeps = {path.parent.parent for path in outputs.glob("multirun/*/*/*/summary.json")}
    sweeps |= {path.parent for path in outputs.glob("multirun/*/*/sweep_summary.json")}
    items += [_sweep(folder) for folder in sweeps]
    return sorted((i for i in items if i is not None), key=lambda i: i.written, reverse=True)[:count]


def _run(path: Path) -> Listed | None:
    summary = load_record(path)
    try:
        written = path.stat().st_mtime
    except OSError:
        return None
    if summary is None:
        return None
    return Listed(written, str(summary.get("recipe", "?")), str(summary.get("status", "?")), path.parent)


def _sweep(folder: Path) -> Listed | None:
    """A sweep: its summary's counts when it has finished, else the jobs' records so far."""
    jobs = [_run(p) for p in folder.glob("*/summary.json")]
    jobs = [j for j in jobs if j is not None]
    summary_path = folder / "sweep_summary.json"
    recipes = sorted({j.recipe for j in jobs}) or ["?"]
    counts = (load_record(summary_path) or {}).get("counts")
    try:
        written = summary_path.stat().st_mtime
    except OSError:
        counts = None
    if not isinstance(counts, dict):  # no summary yet: at work, or stopped before the end
        written = max((j.written for j in jobs), default=folder.stat().st_mtime)
        return Listed(written, "sweep: " + ", ".join(recipes), f"running ({len(jobs)} job records so far)", folder)
    failing = [s for s in counts if s not in ("passed", "skipped")]
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    return Listed(written, "sweep: " + ", ".join(recipes), f"{failing[0] if failing else 'passed'} ({detail})", folder)
