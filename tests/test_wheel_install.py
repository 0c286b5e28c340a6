"""A non-editable install from a wheel carries its configs and recipes and runs from any folder."""

from __future__ import annotations

import json
import subprocess
import sys
import venv

import pytest

from conftest import REPO


@pytest.mark.process
def test_wheel_runs_recipe_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("fxflow-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = subprocess.run([str(python), "-c", "import fxflow.paths as p; print(p.conf_dir()); print(p.recipes_dir())"],
                             cwd=elsewhere, capture_output=True, text=True, check=True)
    assert all(str(env_dir) in line for line in located.stdout.split()), located.stdout
    run = elsewhere / "run"
    proc = subprocess.run([str(env_dir / "bin" / "fxflow"), "recipe=sparse_nn", f"hydra.run.dir={run}"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["metrics"]["partition.graph_node_count"] == 24
