"""Sweeps (`-m`) that hold with any launcher: each job writes its own summary.json, and the
launching process reads them back from disk after the multirun, so the summary and the exit code
are the same with the basic launcher, joblib's worker processes or a cluster's.

After every multirun the sweep folder gets `sweep_summary.{csv,json,md}` (one row per job:
overrides, status, the figures the recipe names in `report.key_metrics`), `sweep_summary.png`
(the first figure across jobs), and the table printed to fit 100 columns. A job whose record in
the sweep folder already says passed, with the same overrides and the same resolved config
(config.yaml, byte for byte), is not run again (unless `sweep.rerun_passed=true`); with
`sweep.fail_fast=true`, a job that fails or errors leaves a marker that makes jobs not yet
started skip. A sweep that ends early (interrupted, a worker killed) leaves no job `running`:
`settle_unfinished` marks the records of jobs whose process is gone.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import socket
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tabulate import tabulate

from fxflow.bounded_load import load_record
from fxflow.record.liveness import process_gone, shown_status
from fxflow.record.writer import RunRecord
from fxflow.reports.console import make_console

log = logging.getLogger("fxflow")

STOP_MARKER = ".fail_fast_stop"  # in the sweep folder while a fail_fast sweep has a failed job
SUMMARY = "summary.json"
OK_STATUSES = ("passed", "skipped")  # a skipped job lacked a requirement of the machine; it does not fail a sweep


# ------------------------------------------------------------------------------------- inside a job


def job_overrides(overrides: list[Any]) -> list[str]:
    """The overrides that say what a job computes: all but the `sweep.*` switches, which say how the
    sweep runs (re-run passed jobs, stop at the first failure). They identify a sweep and its jobs."""
    return [str(o) for o in overrides if not str(o).lstrip("+~").startswith("sweep.")]


def earlier_pass(run_dir: Path, overrides: list[str], config_yaml: str) -> dict[str, Any] | None:
    """The summary of an earlier job in this folder that passed with the same overrides and the same
    resolved config (`config_yaml`, as the run writes config.yaml; its `sweep:` switches aside: they
    say how the sweep runs, not what a job computes), if any. Overrides alone are not enough: an
    edited recipe or group file changes what the same overrides run."""
    summary = load_record(run_dir / SUMMARY)
    if summary is None:
        return None
    try:
        with (run_dir / "config.yaml").open("rb") as handle:
            recorded = handle.read(len(config_yaml.encode("utf-8")) + 4096).decode("utf-8")
    except (OSError, ValueError):
        return None
    same = (summary.get("status") == "passed"
            and isinstance(summary.get("overrides"), list)
            and job_overrides(summary["overrides"]) == job_overrides(overrides)
            and _without_block(recorded, "sweep") == _without_block(config_yaml, "sweep"))
    return summary if same else None


def _without_block(yaml_text: str, key: str) -> str:
    """The YAML text without its top-level `key:` block (block style, as OmegaConf writes it)."""
    kept, inside = [], False
    for line in yaml_text.splitlines(keepends=True):
        if line[:1] not in (" ", "\t", "\n", ""):
            inside = line.startswith(f"{key}:")
        if not inside:
            kept.append(line)
    return "".join(kept)


def stopped(sweep_dir: Path) -> bool:
    """Whether a fail_fast sweep already has a failed job."""
    return (sweep_dir / STOP_MARKER).exists()


def stop(sweep_dir: Path, job: str) -> None:
    """Mark a fail_fast sweep as failed: jobs not yet started will skip."""
    RunRecord(sweep_dir).write_text(STOP_MARKER, f"job {job} failed\n")


def skipped_summary(run_dir: Path, overrides: list[str], recipe: str, reason: str) -> dict[str, Any]:
    """Write (and return) the record of a job that a fail_fast sweep did not run."""
    summary = {"recipe": recipe, "status": "not_run", "reason": reason, "metrics": {}, "checks": [],
               "overrides": list(overrides), "key_metrics": [], "run_dir": str(run_dir)}
    RunRecord(run_dir).write_json(SUMMARY, summary)
    return summary


# ----------------------------------------------------------------------------- the launching process


class SweepSummary(Callback):
    """Hydra callback: clears the fail_fast marker when a multirun starts and writes the summary when
    it ends. `SweepSummary.outcome` is the last multirun's (passed?, summary folder) for the exit code."""

    outcome: tuple[bool, Path] | None = None
    running: Path | None = None  # the sweep folder of a multirun under way in this process

    def __init__(self) -> None:
        self.started = 0.0
        self.expected: list[list[str]] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        sweep_dir = Path(config.hydra.sweep.dir)
        (sweep_dir / STOP_MARKER).unlink(missing_ok=True)
        self.expected = expected_jobs(config)
        SweepSummary.running = sweep_dir

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir, self.expected, self.started)
        paths = write_summary(sweep_dir, rows)
        print_table(rows, paths)
        SweepSummary.outcome = (all(row["status"] in OK_STATUSES for row in rows) and bool(rows), sweep_dir)
        SweepSummary.running = None


def settle_unfinished(sweep_dir: Path, status: str, cause: str, wait_s: float = 10.0) -> list[Path]:
    """After a sweep ended early, give every job record that still says `running` its final status
    (`interrupted` or `error`), once its process is gone (a worker the launcher is stopping gets up
    to `wait_s` to go, or to record its own end). Returns the job folders settled."""
    pending = []
    for path in sorted(sweep_dir.glob(f"*/{SUMMARY}")):
        summary = load_record(path)
        if summary is not None and summary.get("status") == "running":
            pending.append((path, summary))
    deadline = time.monotonic() + wait_s
    settled = []
    for path, summary in pending:
        process = summary.get("process") if isinstance(summary.get("process"), dict) else {}
        while not process_gone(process) and process.get("host") == socket.gethostname() \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        current = load_record(path)
        if current is None or current.get("status") != "running" or not process_gone(current.get("process")):
            continue  # it recorded its own end, or it still runs (another host: it may)
        pid = process.get("pid")
        current.pop("incomplete", None)
        current.update(status=status, error={"stage": "sweep", "type": status,
                                             "message": f"{cause}; the job's process {pid} ended without "
                                                        "recording a result"})
        current.setdefault("process", {})["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:
            RunRecord(path.parent).write_json(SUMMARY, current)
        except OSError:
            continue  # readers still show it as abandoned
        settled.append(path.parent)
    return settled


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in job order, when the basic sweeper expands the command line; None otherwise."""
    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
    if not target.endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def collect(sweep_dir: Path, expected: list[list[str]] | None, started: float = 0.0) -> list[dict[str, Any]]:
    """One row per job, from the summary.json files under the sweep folder.

    With the job list known, every job gets a row (`missing` when it left no record, e.g. a
    worker that died); a record left before this multirun started is marked `earlier`.
    """
    found: dict[tuple[str, ...], tuple[Path, dict[str, Any]]] = {}
    for path in sorted(sweep_dir.glob(f"*/{SUMMARY}"), key=lambda p: (len(p.parent.name), p.parent.name)):
        summary = load_record(path)
        if summary is not None and isinstance(summary.get("overrides", []), list):
            found[tuple(job_overrides(summary.get("overrides", [])))] = (path, summary)
    keys = [tuple(job_overrides(job)) for job in expected] if expected is not None else list(found)
    rows = []
    for number, key in enumerate(keys):
        if key not in found:
            rows.append({"job": number, "overrides": list(key), "status": "missing", "metrics": {}, "run_dir": "",
                         "earlier": False})
            continue
        path, summary = found[key]
        metrics = summary.get("metrics", {})
        rows.append({
            "job": number if expected is not None else path.parent.name,
            "overrides": list(key),
            "status": shown_status(summary),
            "metrics": {name: metrics[name] for name in summary.get("key_metrics", []) if name in metrics},
            "run_dir": str(path.parent),
            "earlier": path.stat().st_mtime < started,
        })
    return rows


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    record = RunRecord(sweep_dir)
    columns = metric_columns(rows)
    varying, common = split_overrides(rows)
    counts = dict(Counter(r["status"] for r in rows))
    record.write_json("sweep_summary.json", {"passed": all(r["status"] in OK_STATUSES for r in rows),
                                             "counts": counts, "common_overrides": common, "metrics": columns,
                                             "jobs": rows})
    table = [[r["job"], " ".join(varying[i]), _status(r), *[_cell(r["metrics"].get(c, "")) for c in columns]]
             for i, r in enumerate(rows)]
    markdown = (f"all jobs: {' '.join(common) or '-'}\n\n"
                + tabulate(table, headers=["job", "overrides", "status", *columns], tablefmt="github") + "\n")
    record.write_text("sweep_summary.md", markdown)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["job", "overrides", "status", "run_dir", *columns])
    for r in rows:
        writer.writerow([r["job"], " ".join(r["overrides"]), r["status"], r["run_dir"],
                         *[json.dumps(r["metrics"][c]) if c in r["metrics"] else "" for c in columns]])
    record.write_text("sweep_summary.csv", buffer.getvalue())
    paths = {"md": record.path("sweep_summary.md")}
    png = plot(rows, columns, varying)
    if png is not None:
        paths["png"] = record.write_bytes("sweep_summary.png", png)
    return paths


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row["metrics"]))


def split_overrides(rows: list[dict[str, Any]]) -> tuple[list[list[str]], list[str]]:
    """(per job, the overrides that vary across jobs; the overrides every job shares)."""
    common = [o for o in (rows[0]["overrides"] if rows else []) if all(o in r["overrides"] for r in rows)]
    if len(rows) == 1:
        return [rows[0]["overrides"]], []
    return [[o for o in r["overrides"] if o not in common] for r in rows], common


def print_table(rows: list[dict[str, Any]], paths: dict[str, Path], console: Console | None = None) -> None:
    """The summary as a table of at most 100 columns (the terminal's width, or COLUMNS when piped):
    one column per swept key, its values whole (`devices`, `mode`), then one column per figure while
    they fit, else the figures as `name = value` lines."""
    if console is None:
        console = make_console()
        console = console if console.width <= 100 else make_console(width=100)
    columns = metric_columns(rows)
    varying, common = split_overrides(rows)
    if len(rows) == 1:  # one job: its overrides go in the title, as a sweep's shared ones do
        varying, common = [[]], varying[0]
    swept = swept_values(varying)
    # the heading above the table, not its title: a title is only as wide as a narrow table
    console.print(f"sweep: {len(rows)} job{'s' if len(rows) != 1 else ''}" +
                  (f"; all with {escape(' '.join(common))}" if common else ""), highlight=False)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    for header, values in swept.items():  # a swept value is never cut: its column is as wide as the widest
        table.add_column(escape(header), no_wrap=True, min_width=max(map(len, values), default=1))
    table.add_column("status", no_wrap=True)
    headers = [c.rsplit(".", 1)[-1] for c in columns]
    per_column = len(columns) <= 3 and sum(len(h) + 3 for h in headers) <= 55
    if per_column:
        for header in headers:
            table.add_column(header.replace("_", " "), justify="right", ratio=1, overflow="fold")
    else:
        table.add_column("figures", ratio=3, overflow="fold")
    for number, row in enumerate(rows):
        cells = [str(row["job"]), *(escape(values[number]) for values in swept.values()), _status(row, styled=True)]
        if per_column:
            cells += [escape(_cell(row["metrics"].get(c, ""))) for c in columns]
        else:
            cells.append(escape("\n".join(f"{c} = {_cell(v)}" for c, v in row["metrics"].items())))
        table.add_row(*cells)
    console.print(table)
    console.print(f"sweep summary: {escape(str(paths['md']))}" +
                  (f"  picture: {escape(paths['png'].name)}" if "png" in paths else ""), highlight=False, soft_wrap=True)


def swept_values(varying: list[list[str]]) -> dict[str, list[str]]:
    """Per swept key (named by its last part, `mode` for `transforms.partition.mode`, unless two keys
    share it), each job's value: `{"devices": ["two_gpu", "three_gpu"], "mode": [...]}`."""
    keys: dict[str, None] = {}
    per_job: list[dict[str, str]] = []
    for overrides in varying:
        values = {}
        for text in overrides:
            key, sep, value = text.partition("=")
            key = key.lstrip("+") if sep else text
            values[key] = value if sep else "(set)"
            keys[key] = None
        per_job.append(values)
    short = {key: _short_override(key) for key in keys}
    clash = {name for name in short.values() if list(short.values()).count(name) > 1}
    return {(key if short[key] in clash else short[key]): [job.get(key, "") for job in per_job] for key in keys}


def plot(rows: list[dict[str, Any]], columns: list[str], varying: list[list[str]]) -> bytes | None:
    """Bars of the first two numeric figures across jobs; None without matplotlib or figures."""
    numeric = [c for c in columns if any(_number(r["metrics"].get(c)) for r in rows)][:2]
    if not numeric:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("no sweep picture: matplotlib is not installed")
        return None
    labels = [f"{r['job']}\n" + "\n".join(_short_override(o) for o in v) for r, v in zip(rows, varying)]
    fig, axes = plt.subplots(len(numeric), 1, figsize=(max(6.0, 1.9 * len(rows) + 1), 2.6 * len(numeric) + 0.8),
                             squeeze=False)
    for ax, column in zip(axes[:, 0], numeric):
        values = bar_heights(rows, column)
        colours = ["#1f77b4" if r["status"] == "passed" else "#d62728" for r in rows]
        bars = ax.bar(range(len(rows)), values, color=colours)
        ax.bar_label(bars, labels=[_cell(v) if v == v else "" for v in values], fontsize=8)
        for index, (row, value) in enumerate(zip(rows, values)):
            if value != value:
                ax.annotate(row["status"], (index, 0), ha="center", va="bottom", fontsize=8, color="#d62728")
        ax.set_ylabel(column.rsplit(".", 1)[-1].replace("_", " "), fontsize=9)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_title("sweep: " + ", ".join(c.rsplit(".", 1)[-1] for c in numeric) + " by job (red: not passed)",
                         fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def bar_heights(rows: list[dict[str, Any]], column: str) -> list[float]:
    """Each job's figure for the picture; NaN (no bar, its status written instead) for a job without
    it (not run, missing, broke early), never 0, which would read as a measured zero."""
    return [float(r["metrics"][column]) if _number(r["metrics"].get(column)) else float("nan") for r in rows]


def _short_override(text: str) -> str:
    """`transforms.partition.mode=cost_aware` -> `mode=cost_aware`."""
    key, sep, value = text.partition("=")
    return key.rsplit(".", 1)[-1].rsplit("@", 1)[0] + sep + value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def _status(row: dict[str, Any], styled: bool = False) -> str:
    text = row["status"] + (" (earlier)" if row.get("earlier") else "")
    if not styled:
        return text
    colour = "green" if row["status"] == "passed" else "yellow" if row["status"] == "skipped" else "red"
    return f"[{colour}]{escape(text)}[/]"
