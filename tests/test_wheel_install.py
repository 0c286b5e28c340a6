"""A non-editable install from a wheel carries its configs, recipes and Hydra plugin and runs from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hatchling.build import build_wheel
from omegaconf import OmegaConf

from conftest import REPO


@pytest.mark.process
def test_wheel_runs_recipe_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the PEP 517 hook builds the project in the working folder
    wheel = tmp_path / build_wheel(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = elsewhere / "run"
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy first, before the checkout's editable one
    proc = subprocess.run([str(target / "bin" / "fxflow"), "recipe=sparse_nn", "report.pictures=false",
                           f"hydra.run.dir={run}"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["metrics"]["partition.graph_node_count"] == 24
    sources = OmegaConf.load(run / ".hydra" / "hydra.yaml").hydra.runtime.config_sources
    paths = {s.provider: s.path for s in sources}
    assert paths["main"] == str(target / "fxflow" / "conf")  # the configs inside the wheel, not the checkout's
    assert paths["fxflow-recipes"] == str(target / "fxflow" / "recipes")
