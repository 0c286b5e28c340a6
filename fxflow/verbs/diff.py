"""Compare two run records: the headline figures that changed (with their relative change) first,
then check outcomes that differ, then the config values that differ. `--all` lists every figure
and config value that differs; by default the other figures and long config lists are counted.

    fxflow diff outputs/2024-05-01/10-00-00-partition_latency outputs/2024-05-01/10-05-00-partition_latency
    fxflow diff outputs/multirun/2024-05-01/10-00-00/0 outputs/multirun/2024-05-01/10-00-00/3 --all
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fxflow.bounded_load import load_json, load_yaml
from fxflow.facts import flatten
from fxflow.record.liveness import shown_status

_CONFIG_ROWS = 12  # config values shown without --all
_KEY_WIDTH = 48  # keys are never broken: up to this width they get their whole length


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", type=Path, help="a run's record folder (holds summary.json)")
    parser.add_argument("run_b", type=Path, help="another run's record folder")
    parser.add_argument("--all", action="store_true", dest="show_all",
                        help="every figure and config value that differs, not only the headline figures")


def run(args: argparse.Namespace, console: Console) -> int:
    try:
        a, b = load_run(args.run_a), load_run(args.run_b)
    except ValueError as exc:  # a damaged record: one line naming the file
        console.print(f"[red]unreadable run record[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    if a is None or b is None:
        missing = args.run_a if a is None else args.run_b
        console.print(f"[red]no run record[/] in {escape(str(missing))} (expected summary.json there)", highlight=False)
        return 2
    for name, folder, record in (("A", args.run_a, a), ("B", args.run_b, b)):  # a dead `running` run: abandoned
        console.print(f"{name}: {escape(str(folder))}  ({escape(shown_status(record['summary']))})",
                      highlight=False, soft_wrap=True)
    show_all = getattr(args, "show_all", False)
    figures = differing(a["summary"].get("metrics", {}), b["summary"].get("metrics", {}))
    headline = set(a["summary"].get("key_metrics", [])) | set(b["summary"].get("key_metrics", []))
    first = [row for row in figures if row[0] in headline] if headline and not show_all else figures
    sections = [
        ("figures" if show_all or not headline else "headline figures", first, True, len(figures) - len(first)),
        ("checks", differing(check_outcomes(a["summary"]), check_outcomes(b["summary"])), False, 0),
    ]
    config = differing(a["config"], b["config"])
    shown = config if show_all else config[:_CONFIG_ROWS]
    sections.append(("config values", shown, False, len(config) - len(shown)))
    for title, rows, change, hidden in sections:
        console.print(_table(title, rows, change) if rows else f"{title}: the same", highlight=False)
        if hidden:
            what = "other figures" if change else "more config values"
            console.print(f"  … {hidden} {what} differ (--all lists them)", highlight=False)
    return 0


def load_run(folder: Path) -> dict[str, Any] | None:
    """The record's summary and flattened config; None without summary.json. A damaged record (not
    JSON or YAML, over fxflow's size and alias limits, missing what diff compares) is a ValueError
    naming the file and what is wrong."""
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return None
    summary = load_json(summary_path)
    _check_summary(summary, summary_path)
    config_path = folder / "config.yaml"
    config = load_yaml(config_path) if config_path.is_file() else {}
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"{config_path}: a record's config.yaml is a mapping, not a {type(config).__name__}")
    return {"summary": summary, "config": flatten(config or {})}


def _check_summary(summary: Any, path: Path) -> None:
    """What diff reads from summary.json is there and of the right kind."""
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: a summary is a JSON object, not a {type(summary).__name__}")
    if not isinstance(summary.get("status"), str):
        raise ValueError(f"{path}: `status` is missing or not a string")
    if not isinstance(summary.get("metrics", {}), dict):
        raise ValueError(f"{path}: `metrics` is not an object")
    checks = summary.get("checks", [])
    if not isinstance(checks, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("passed"), bool)
            for c in checks):
        raise ValueError(f"{path}: `checks` is not a list of {{name, passed}} objects")


def check_outcomes(summary: dict[str, Any]) -> dict[str, str]:
    outcome = {}
    for check in summary.get("checks", []):
        word = "pass" if check["passed"] else "fail"
        outcome[check["name"]] = word if check.get("binding", True) else f"{word} (shown only)"
    return outcome


def differing(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    missing = object()
    rows = []
    for key in dict.fromkeys([*a, *b]):
        left, right = a.get(key, missing), b.get(key, missing)
        if left != right:
            rows.append((key, "-" if left is missing else left, "-" if right is missing else right))
    return rows


def relative_change(a: Any, b: Any) -> str:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return ""
    if a == 0:
        return "new" if b else ""
    return f"{(b - a) / abs(a):+.1%}"


def _table(title: str, rows: list[tuple[str, Any, Any]], change: bool) -> Table:
    """Keys whole (never broken mid-word); values fold when they must."""
    table = Table(title=f"{title} that differ ({len(rows)})", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("key", no_wrap=True, min_width=min(max(len(r[0]) for r in rows), _KEY_WIDTH))
    table.add_column("A", overflow="fold", ratio=1)
    table.add_column("B", overflow="fold", ratio=1)
    if change:
        table.add_column("change", justify="right", no_wrap=True)
    for key, left, right in rows:
        cells = [escape(key), escape(_short(left)), escape(_short(right))]
        table.add_row(*cells, *([relative_change(left, right)] if change else []))
    return table


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"
