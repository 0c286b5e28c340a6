"""What one run accumulates as it goes; `summary()` is the contract file summary.json."""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import torch

import fxflow
from fxflow import progress
from fxflow.checks.result import Check
from fxflow.facts import flatten

log = logging.getLogger("fxflow")


@dataclass
class RunState:
    """Facts by stage, checks, timings, the stages that completed, and the error if one ended the run.

    `step` is what the run is doing now (validate, build, trace, a transform's name, checks,
    record), so an exception anywhere can be reported against the step it broke.

    Status is `running` until `settle()` (or `interrupt()`) gives the final one: `passed`,
    `failed`, `error` or `interrupted`. A summary.json that still says `running` belongs to a
    process that is still at work or died without finishing; it names the process and host.
    """

    recipe: str
    overrides: list[str]
    hydra_overrides: list[str] = field(default_factory=list)  # hydra.* and hydra/ overrides of the command line
    trusted: dict[str, str] = field(default_factory=dict)  # trusted package -> where that trust came from
    scenario_changes: list[str] = field(default_factory=list)  # overrides that make this run an exploration
    model: str = ""  # the model built: class or function name
    status: str = "running"
    step: str = "validate"
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    report: list[Any] = field(default_factory=list)
    key_metrics: list[str] = field(default_factory=list)  # the figures a sweep summary shows for this run
    pinned_binding: bool = True  # whether the recipe's expectations decide the status
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started_at: str = field(default_factory=lambda: _now())
    finished_at: str | None = None

    @contextmanager
    def timed(self, name: str, step: str | None = None) -> Iterator[None]:
        """Time a block under `name`, mark `step` (default: name) as the current step, and log both ends."""
        self.step = step or name
        log.info("step %s: started", name)
        start = time.perf_counter()
        try:
            with progress.stage(name):  # a line on a terminal when the step lasts (fxflow.progress)
                yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 6)
        log.info("step %s: done in %.3f s", name, self.timings[name])

    def interrupt(self, signal_name: str) -> None:
        """End the run as interrupted at the current step."""
        self.error = {"stage": self.step, "type": signal_name,
                      "message": f"interrupted by {signal_name} during step {self.step}"}
        self.status = "interrupted"

    def settle(self) -> None:
        """Final status: interrupted and error stand; skipped if the machine lacks a requirement;
        else passed only when every binding check holds and at least one check compared something
        (a recorded skip is not a comparison)."""
        self.finished_at = _now()
        if self.status == "interrupted":
            return
        if self.error is not None:
            self.status = "error"
        elif self.skipped is not None:
            self.status = "skipped"
        else:
            binding = [c for c in self.checks if c.binding]
            compared = [c for c in binding if c.kind != "skip"]
            self.status = "passed" if compared and all(c.passed for c in binding) else "failed"

    def summary(self, run_dir: Path) -> dict[str, Any]:
        metrics = flatten(self.facts)
        running = self.status == "running"
        incomplete = (
            {"incomplete": f"this run has not finished: process {self.pid} on {self.host}, started {self.started_at}, "
                           "was still at work when this was written; if that process is gone, it died before "
                           "recording a result"}
            if running else {}
        )
        return {
            "recipe": self.recipe,
            "model": self.model,
            "status": self.status,
            **incomplete,
            "scenario": {"changed_by": self.scenario_changes,
                         "pinned_figures": "binding" if self.pinned_binding else "shown"},
            "metrics": metrics,
            "checks": [c.to_json() for c in self.checks],
            "stages": self.stages,
            "timings": self.timings,
            "files": self.files,
            "error": self.error,
            "skipped": self.skipped,
            "notes": self.notes,
            "versions": versions(),
            "overrides": self.overrides,
            "hydra_overrides": self.hydra_overrides,
            "trusted_packages": self.trusted,
            "key_metrics": [m for m in self.key_metrics if m in metrics],
            "run_dir": str(run_dir),
            "process": {"pid": self.pid, "host": self.host, "started_at": self.started_at,
                        "finished_at": self.finished_at},
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# Packages that build or trace models beside torch: the record names the version of each one the
# run imported, so a figure from a transformers model says which transformers gave it.
MODEL_PACKAGES = ("transformers", "torchvision", "timm")


def versions() -> dict[str, str]:
    """python, torch, fxflow, and each of MODEL_PACKAGES this process has imported."""
    found = {"python": platform.python_version(), "torch": torch.__version__, "fxflow": fxflow.__version__}
    for name in MODEL_PACKAGES:
        module = sys.modules.get(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "unknown"))
    return found
