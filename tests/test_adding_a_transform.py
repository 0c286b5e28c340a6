"""The README's "Adding a transform" holds: its CountRelus example is three files (the transform,
its config entry, a recipe) and nothing else. In a copy of the project the three files are
written where the README says, and the copy's own tests for them pass with no other edit: the
transform is found by its `_target_`, its config agrees with the class, and the recipe is
discovered, runs and holds its figure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COPIED = ("fxflow", "conf", "recipes", "hydra_plugins", "tests", "pyproject.toml", "README.md")


def readme_files() -> dict[str, str]:
    """The files the README's section names, each with the text of the code block under it."""
    section = (REPO / "README.md").read_text().split("## Adding a transform", 1)[1].split("\n## ", 1)[0]
    files = {}
    for match in re.finditer(r"^\d\. `([^`]+)`.*?```\w+\n(.*?)^\s*```", section, re.S | re.M):
        files[match.group(1)] = textwrap.dedent(match.group(2))
    return files


@pytest.mark.process
def test_the_readme_count_relus_example_is_three_files(tmp_path):
    copy = tmp_path / "project"
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, copy / name)
    files = readme_files()
    assert sorted(files) == ["conf/transform/count_relus.yaml", "fxflow/transforms/count_relus.py",
                             "recipes/count_relus.yaml"]
    for relative, text in files.items():
        assert not (copy / relative).exists(), f"{relative} is already part of the project"
        (copy / relative).write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-n", "0", "-o", "addopts=",
         "tests/test_recipes.py", "tests/test_component_configs.py", "tests/test_torch_test_coverage.py",
         # test_recipes.py's tests of other recipes (their runs, their pinned figures) are this suite's own
         "-k", "count_relus or not test_recipes.py"],
        cwd=copy, env={**_env(), "PYTHONPATH": str(copy)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = [line for line in proc.stdout.splitlines() if "count_relus" in line and "PASSED" in line]
    assert any("test_recipe_runs_and_holds_its_own_figures[count_relus]" in line for line in passed), proc.stdout
    assert any("transform/count_relus.yaml" in line for line in passed), proc.stdout  # its config checked too


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
