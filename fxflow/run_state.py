"""What one run accumulates as it goes; `summary()` is the contract file summary.json."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

import fxflow
from fxflow.checks.result import Check
from fxflow.facts import flatten


@dataclass
class RunState:
    """Facts by stage, checks, timings, the stages that completed, and the error if one ended the run.

    `step` is what the run is doing now (validate, build, trace, a transform's name, checks,
    record), so an exception anywhere can be reported against the step it broke.
    """

    recipe: str
    overrides: list[str]
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

    @contextmanager
    def timed(self, name: str, step: str | None = None) -> Iterator[None]:
        """Time a block under `name` and mark `step` (default: name) as the current step."""
        self.step = step or name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 6)

    def settle(self) -> None:
        """Final status: error if something broke, skipped if the machine lacks a requirement,
        else passed only when every check holds."""
        if self.error is not None:
            self.status = "error"
        elif self.skipped is not None:
            self.status = "skipped"
        else:
            binding = [c for c in self.checks if c.binding]
            self.status = "passed" if binding and all(c.passed for c in binding) else "failed"

    def summary(self, run_dir: Path) -> dict[str, Any]:
        metrics = flatten(self.facts)
        return {
            "recipe": self.recipe,
            "model": self.model,
            "status": self.status,
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
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "fxflow": fxflow.__version__},
            "overrides": self.overrides,
            "key_metrics": [m for m in self.key_metrics if m in metrics],
            "run_dir": str(run_dir),
        }
