"""Shared helpers: run the fxflow CLI in a subprocess and read its run record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


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
