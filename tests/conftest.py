"""Shared fixtures: run a recipe in-process (compose + run_job), or the CLI in a subprocess.

Most tests use `run_recipe`: it composes the recipe exactly as `python -m fxflow` does and
calls the runner in this process (well under a second a run). Tests whose point is the
process itself (exit code, terminal output, Hydra's own errors, install) use `cli` and carry
the `process` marker: `pytest -m process` runs just those, `-m "not process"` skips them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from fxflow.compose import compose_recipe
from fxflow.pipeline import run_job
from fxflow.run_state import RunState

REPO = Path(__file__).resolve().parents[1]

# Test inputs are small: one intra-op thread is as fast as several, and on a shared machine it
# keeps OpenMP workers from spinning against each other (ResNet-18 at 2x3x64x64: ~20 ms a call
# with one thread, up to 0.8 s with two under load).
torch.set_num_threads(1)


@dataclass
class RecipeRun:
    """One in-process run: the runner's state, the summary.json it wrote, and its record folder."""

    state: RunState
    summary: dict[str, Any]
    run_dir: Path

    @property
    def metrics(self) -> dict[str, Any]:
        return self.summary["metrics"]

    def check(self, name: str) -> dict[str, Any]:
        return next(c for c in self.summary["checks"] if c["name"] == name)


def run_in_process(recipe: str | None, overrides: list[str], run_dir: Path) -> RecipeRun:
    cfg, files = compose_recipe(recipe, overrides)
    state = run_job(cfg, run_dir, overrides, files)
    summary = json.loads((run_dir / "summary.json").read_text())
    return RecipeRun(state, summary, run_dir)


@pytest.fixture
def run_recipe(tmp_path: Path):
    """`run_recipe("sparse_nn", "devices=two_gpu")` -> RecipeRun, each call in its own record folder."""
    count = 0

    def _run(recipe: str | None = None, *overrides: str) -> RecipeRun:
        nonlocal count
        count += 1
        return run_in_process(recipe, list(overrides), tmp_path / f"run{count}")

    return _run


def run_cli(args: list[str], run_dir: Path, cwd: Path | None = None, timeout: int = 300) -> tuple[subprocess.CompletedProcess, dict[str, Any] | None]:
    """`python -m fxflow ARGS hydra.run.dir=RUN_DIR`; returns the process and summary.json (None if absent)."""
    proc = subprocess.run(
        [sys.executable, "-m", "fxflow", *args, f"hydra.run.dir={run_dir}"],
        cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
    )
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return proc, summary


@pytest.fixture
def cli(tmp_path: Path):
    def _run(*args: str, cwd: Path | None = None):
        return run_cli(list(args), tmp_path / "run", cwd=cwd)

    return _run
