"""Every shipped recipe composes, validates, runs, and shows the seed's figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import run_cli
from fxflow.config.validate import validate
from fxflow.paths import conf_dir
from fxflow.recipes import recipe_files, register_recipes

RECIPES = sorted(recipe_files())

# The figures test_fx_experimental.py asserts, by recipe, as recorded metric names.
SEED_FIGURES = {
    "find_single_partition": {"partition.partitions.0.logical_device_ids": [1]},
    "partition_node_manipulation": {"partition.partitions.0.used_mem_bytes": 112,
                                    "partition.what_if_removed.add_2.used_mem_bytes_after": 80},
    "size_based_partition": {f"partition.partitions.{i}.logical_device_ids": [i] for i in range(3)},
    "partition_device_mapping": {"partition.partitions.0.logical_device_ids": [0],
                                 "partition.partitions.1.logical_device_ids": [1],
                                 "partition.partitions.2.logical_device_ids": [0]},
    "sparse_nn": {"partition.graph_node_count": 24},
    "partition_latency": {"partition.partitions.0.latency": [128.0, 80.0, 160.0],
                          "partition.partitions.1.latency": [16.0, 32.0, 32.0],
                          "partition.critical_path_latency": 208.0},
    "cost_aware_partition": {"partition.critical_path_latency": 160.0},
    "aot_based_partition": {"partition.partitions.0.used_mem_bytes": 48, "partition.partitions.1.used_mem_bytes": 48,
                            "partition.partitions.0.logical_device_ids": [0], "partition.partitions.1.logical_device_ids": [0]},
    "saturate_host": {"partition.num_partitions": 2, "partition.partitions.0.logical_device_ids": [0, 4],
                      "partition.partitions.1.logical_device_ids": [1, 2]},
    "replace_target_nodes_with": {"replace.replaced": 1},
}
EXPECTED_REFUSALS = {"lack_of_devices": "enough memory", "large_node_error": "too large to fit any device"}


def test_every_seed_partition_scenario_has_a_recipe():
    assert set(SEED_FIGURES) | set(EXPECTED_REFUSALS) == set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_and_validates(name):
    register_recipes()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"recipe={name}"])
    plan = validate(OmegaConf.to_container(cfg, resolve=True))
    assert plan.spec.recipe == name
    assert plan.spec.expect.metrics or plan.spec.expect.error, "a recipe must expect something"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_with_seed_figures(name, tmp_path):
    proc, summary = run_cli([f"recipe={name}"], tmp_path / name)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["status"] == "passed"
    for metric, value in SEED_FIGURES.get(name, {}).items():
        assert summary["metrics"][metric] == value, metric
    if name in EXPECTED_REFUSALS:
        refusal = next(c for c in summary["checks"] if c["name"] == "expect.error")
        assert refusal["passed"] and EXPECTED_REFUSALS[name] in refusal["actual"]["message"]
    equivalence = [c for c in summary["checks"] if c["name"].startswith("equivalence.")]
    assert equivalence and all(c["passed"] for c in equivalence)


def test_recipe_fails_when_its_figure_is_wrong(tmp_path):
    proc, summary = run_cli(["recipe=partition_latency", "expect.metrics.partition.critical_path_latency=209.0"], tmp_path / "r")
    assert proc.returncode == 1
    assert summary["status"] == "failed"
    bad = next(c for c in summary["checks"] if c["name"] == "expect.partition.critical_path_latency")
    assert not bad["passed"] and bad["actual"] == 208.0


def test_expected_refusal_that_does_not_happen_fails(tmp_path):
    proc, summary = run_cli(["recipe=lack_of_devices", "devices=three_gpu"], tmp_path / "r")
    assert proc.returncode == 1 and summary["status"] == "failed"
    assert not next(c for c in summary["checks"] if c["name"] == "expect.error")["passed"]


def test_latency_model_is_swappable_by_group(tmp_path):
    proc, summary = run_cli(["recipe=partition_latency", "latency@transforms.partition.latency_model=size_unit",
                             "~expect.metrics"], tmp_path / "r")
    assert summary["status"] == "passed", proc.stdout[-2000:]
    assert summary["metrics"]["partition.partitions.1.latency"] == [16.0, 1.0, 16.0]


def test_sweep_over_modes_and_devices(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "fxflow", "-m", "recipe=partition_latency",
         "transforms.partition.mode=size_based,cost_aware", "devices=two_gpu,three_gpu", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=600,
    )
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert len(rows) == 4
    assert all("partition.critical_path_latency" in row["metrics"] for row in rows)
    assert {tuple(sorted(r["overrides"])) for r in rows} == {
        tuple(sorted(["recipe=partition_latency", f"transforms.partition.mode={m}", f"devices={d}"]))
        for m in ("size_based", "cost_aware") for d in ("two_gpu", "three_gpu")
    }
    for row in rows:
        summary = json.loads((sweep / str(row["job"]) / "summary.json").read_text())
        assert summary["status"] == row["status"]
    # The recipe's figures hold only for its own device list, so these jobs fail their expectations.
    assert proc.returncode == 1
