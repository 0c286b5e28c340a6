"""Every shipped recipe composes, validates, runs in-process, and shows the figures its torch test asserts."""

from __future__ import annotations

import pytest

from fxflow.compose import compose_recipe
from fxflow.config.validate import resolve
from fxflow.plan import plan_run
from fxflow.recipes import recipe_files

RECIPES = sorted(recipe_files())
# Recipes that start worker processes: run (and checked more closely) in tests/test_distributed_recipes.py.
PROCESS_RECIPES = {name for name in RECIPES if name.startswith("distributed_")}

# The figures test_fx_experimental.py asserts, by recipe, as recorded metric names.
TORCH_TEST_FIGURES = {
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


def test_every_torch_partition_scenario_has_a_recipe():
    assert set(TORCH_TEST_FIGURES) | set(EXPECTED_REFUSALS) == set(RECIPES) - PROCESS_RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_and_validates(name):
    cfg, files = compose_recipe(name)
    plan = plan_run(resolve(cfg), files)
    assert plan.spec.recipe == name
    assert plan.spec.expect.metrics or plan.spec.expect.error, "a recipe must expect something"
    assert f"recipes/{name}.yaml" in " ".join(files)


@pytest.mark.parametrize("name", sorted(set(RECIPES) - PROCESS_RECIPES))
def test_recipe_runs_with_its_torch_test_figures(name, run_recipe):
    run = run_recipe(name, "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["checks"]
    for metric, value in TORCH_TEST_FIGURES.get(name, {}).items():
        assert run.metrics[metric] == value, metric
    if name in EXPECTED_REFUSALS:
        refusal = run.check("expect.error")
        assert refusal["passed"] and EXPECTED_REFUSALS[name] in refusal["actual"]["message"]
    equivalence = [c for c in run.summary["checks"] if c["name"].startswith("equivalence.")]
    assert equivalence and all(c["passed"] for c in equivalence)


def test_recipe_fails_when_its_figure_is_wrong(run_recipe):
    run = run_recipe("partition_latency", "expect.metrics.partition.critical_path_latency=209.0")
    assert run.summary["status"] == "failed"
    bad = run.check("expect.partition.critical_path_latency")
    assert not bad["passed"] and bad["actual"] == 208.0


def test_expected_refusal_that_does_not_happen_fails_when_strict(run_recipe):
    run = run_recipe("lack_of_devices", "devices=three_gpu", "expect.strict=true", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert not run.check("expect.error")["passed"] and run.check("expect.error")["binding"]


def test_latency_model_is_swappable_by_group(run_recipe):
    run = run_recipe("partition_latency", "latency@transforms.partition.latency_model=size_unit", "~expect.metrics")
    assert run.summary["status"] == "passed", run.summary["checks"]
    assert run.metrics["partition.partitions.1.latency"] == [16.0, 1.0, 16.0]


def test_replacing_targets_without_the_new_reference_fails(run_recipe):
    """The transform really changes the computation: against the eager (adding) model it must fail."""
    run = run_recipe("replace_target_nodes_with", "equivalence.reference=null")
    assert run.summary["status"] == "failed"
    assert not run.check("equivalence.replace")["passed"]
