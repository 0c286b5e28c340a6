"""Hydra callback that writes a sweep summary (one row per job) into the sweep directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from tabulate import tabulate

from fxflow.record.writer import RunRecord


def key_metrics(summary: dict[str, Any]) -> list[str]:
    """Metrics worth a sweep column: the expected ones plus any critical-path latency."""
    names = [c["name"].removeprefix("expect.") for c in summary.get("checks", []) if c["name"].startswith("expect.")]
    names += [m for m in summary.get("metrics", {}) if m.endswith(("critical_path_latency", "num_partitions"))]
    return [n for n in dict.fromkeys(names) if n in summary.get("metrics", {})]


class SweepSummary(Callback):
    """Collects each job's summary in `on_job_end`; writes sweep_summary.{json,md} in `on_multirun_end`."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        row: dict[str, Any] = {"job": config.hydra.job.num, "overrides": list(job_return.overrides or [])}
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, dict):
            summary = job_return.return_value
            row["status"] = summary["status"]
            row["metrics"] = {name: summary["metrics"][name] for name in key_metrics(summary)}
            row["run_dir"] = summary["run_dir"]
        else:
            row["status"] = "error"
            row["metrics"] = {}
        self.rows.append(row)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        record = RunRecord(Path(config.hydra.sweep.dir))
        record.write_json("sweep_summary.json", {"jobs": self.rows})
        columns = list(dict.fromkeys(name for row in self.rows for name in row["metrics"]))
        table = [[row["job"], " ".join(row["overrides"]), row["status"], *[row["metrics"].get(c, "") for c in columns]] for row in self.rows]
        text = tabulate(table, headers=["job", "overrides", "status", *columns], tablefmt="github")
        record.write_text("sweep_summary.md", text + "\n")
        print(f"\nsweep summary ({len(self.rows)} jobs) -> {record.path('sweep_summary.md')}\n{text}")
