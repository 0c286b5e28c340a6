"""Shared fixtures: run a recipe in-process (compose + run_job), or the CLI in a subprocess.

Most tests use `run_recipe`: it composes the recipe as `python -m fxflow` does and calls the
runner in this process (well under a second a run). Tests whose point is the process itself
(exit code, terminal output, Hydra's own errors, install) use `cli` and carry the `process`
marker: `pytest -m process` runs just those, `-m "not process"` skips them.

Composing costs ~0.2 s, most of it building the defaults list from the YAML files, so
`compose_cached` composes each (recipe, group choices) once per test run, whichever pytest-xdist
worker gets there first (the others read its pickle), and applies value overrides
(`key=value`, `+key=value`, `~key`) to a copy with Hydra's own override function, the one
its compose calls; test_compose_cache.py checks that this gives what a full compose gives.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from fxflow.paths import conf_dir, user_config_dirs

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from fxflow.run_state import RunState

# torch, Hydra and the pipeline are imported where they are used: a pytest-xdist controller loads
# this file too, and only the workers run tests.

REPO = Path(__file__).resolve().parents[1]
_GROUPS = {p.name for p in conf_dir().iterdir() if p.is_dir()} | {"recipe"}
_COMPOSED: dict[tuple[str | None, tuple[str, ...]], tuple[DictConfig, list[str]]] = {}
_SHARED_ENV = "FXFLOW_TEST_COMPOSED"
# Tests that load torch's OpInfo database (~2.5 s to import) share one worker (pytest-xdist's
# --dist loadgroup, pyproject.toml), so only that worker pays for it.
OPINFO_DB = pytest.mark.xdist_group("opinfo_db")
# Likewise the tests that build transformers' models (~2.5 s to import).
HF_MODELS = pytest.mark.xdist_group("hf_models")


def compose_cached(recipe: str | None, overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """compose_recipe(recipe, overrides), composing each recipe and group choice only once (only the
    shipped configs are cached: a test's own config folder may change between calls)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from fxflow.compose import compose_recipe

    if user_config_dirs():
        return compose_recipe(recipe, overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - let the full compose raise Hydra's own error
        return compose_recipe(recipe, overrides)
    groups = tuple(o.input_line for o in parsed if o.key_or_group.split("/")[0] in _GROUPS)
    values = [o for o in parsed if o.key_or_group.split("/")[0] not in _GROUPS and not o.is_hydra_override()]
    key = (recipe, groups)
    if key not in _COMPOSED:
        _COMPOSED[key] = _shared(key, lambda: _resolved(compose_recipe(recipe, list(groups))))
    base, files = _COMPOSED[key]
    cfg = copy.deepcopy(base)
    try:
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    except Exception:  # noqa: BLE001
        return compose_recipe(recipe, overrides)
    return cfg, [_as_shown(f) for f in files]


def _resolved(composed: tuple[DictConfig, list[str]]) -> tuple[DictConfig, list[str]]:
    cfg, files = composed
    return cfg, [str(Path(f).resolve()) for f in files]


def _shared(key: tuple[str | None, tuple[str, ...]], compose: Callable[[], Any]) -> Any:
    """compose(), or what another pytest-xdist worker of this run already composed for `key`
    (pickled into the run's folder, FXFLOW_TEST_COMPOSED): each recipe is composed once per run,
    not once per worker."""
    folder = os.environ.get(_SHARED_ENV)
    if not folder:
        return compose()
    # the shipped configs' folder is part of the key: a copy of the project tested from here has its own
    path = Path(folder) / (hashlib.sha256(repr((str(conf_dir()), key)).encode()).hexdigest() + ".pickle")
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        pass
    composed = compose()
    partial = path.with_suffix(f".{os.getpid()}")
    partial.write_bytes(pickle.dumps(composed))
    partial.replace(path)  # whole or absent: another worker never reads half a file
    return composed


def _as_shown(path: str) -> str:
    """As fxflow.compose.config_files shows a file: relative to the working folder when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path



def pytest_configure(config: pytest.Config) -> None:
    """Test inputs are small: one intra-op thread is as fast as several, and on a shared machine it
    keeps OpenMP workers from spinning against each other (ResNet-18 at 2x3x64x64: ~20 ms a call
    with one thread, up to 0.8 s with two under load). Not in an xdist controller: it runs no test."""
    if not hasattr(config, "workerinput") and _SHARED_ENV not in os.environ:
        # made before pytest-xdist starts its workers, which inherit the variable; gone at the end
        os.environ[_SHARED_ENV] = config._fxflow_composed = tempfile.mkdtemp(prefix="fxflow-composed-")
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import torch

    torch.set_num_threads(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_fxflow_composed", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_SHARED_ENV, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that start processes go first: with several workers, the long ones then overlap the
    # many short in-process tests instead of running alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("process") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported by collection (torch, hydra, fxflow, the test modules) lives until the
    worker ends: freeze it, so the cyclic collector's full passes during the tests walk only what
    the tests make (a worker's heap is millions of objects, torch's mostly)."""
    import gc

    gc.collect()
    gc.freeze()


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
    from fxflow.pipeline import run_job

    cfg, files = compose_cached(recipe, overrides)
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


@pytest.fixture(autouse=True)
def _restore_logging():
    """Tests that call the command's entry point in-process let Hydra configure logging (handlers on
    the stream pytest captures then); put the loggers back so no later test writes to a closed stream.
    Only loggers that changed are touched (setting a level clears every logger's cache)."""
    loggers = [logging.getLogger(), *(lg for lg in list(logging.root.manager.loggerDict.values())
                                      if isinstance(lg, logging.Logger))]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers]
    yield
    changed = False
    for logger, handlers, level, propagate, disabled in saved:
        if logger.handlers != handlers:
            logger.handlers[:] = handlers
        if (logger.level, logger.propagate, logger.disabled) != (level, propagate, disabled):
            logger.level, logger.propagate, logger.disabled = level, propagate, disabled
            changed = True
    if changed:
        logging.getLogger().setLevel(logging.getLogger().level)  # clears the loggers' level cache once


@pytest.fixture
def trust(monkeypatch):
    """`trust("tests.fixtures_models")`: trust test-only packages the way a user trusts their own,
    through FXFLOW_TRUSTED_PACKAGES (never through a config)."""

    def _trust(*packages: str) -> None:
        monkeypatch.setenv("FXFLOW_TRUSTED_PACKAGES", ",".join(packages))

    return _trust


@pytest.fixture
def trusted_fixtures(trust):
    """Trust tests/fixtures_models (test-only models, transforms and split functions) for one test;
    modules that build from it say `pytestmark = pytest.mark.usefixtures("trusted_fixtures")`."""
    trust("tests.fixtures_models", "fixtures_models")  # the second as worker processes import it


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
