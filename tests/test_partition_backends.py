"""The partition transform's two backends: torch's accelerator Partitioner and fxflow's own
partitioner take the same devices, latency models and transfer rate, record the same facts,
and give modules that pass the same checks; fxflow's critical path is never longer."""

from __future__ import annotations

import pytest

PARTITION_KEYS = {"id", "nodes", "compute_nodes", "used_mem_bytes", "logical_device_ids", "devices", "parents",
                  "children", "latency"}


@pytest.mark.parametrize("recipe,torch_figure", [("partition_latency", 208.0), ("cost_aware_partition", 160.0)])
def test_fxflow_backend_on_torchs_scenarios_is_no_slower(run_recipe, recipe, torch_figure):
    run = run_recipe(recipe, "transforms.partition.backend=fxflow", "~transforms.partition.mode",
                     "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    assert run.check("equivalence.partition")["passed"]
    assert run.metrics["partition.critical_path_latency"] <= torch_figure
    assert run.metrics["partition.algorithm"] == "best" and run.metrics["partition.objective"] == "latency"
    for p in range(run.metrics["partition.num_partitions"]):
        keys = {k.split(".")[3] for k in run.metrics if k.startswith(f"partition.partitions.{p}.")}
        assert keys == PARTITION_KEYS


def test_both_backends_side_by_side_on_the_bench_scenario(run_recipe):
    ours = run_recipe("partition_bench", "report.pictures=false")
    theirs = run_recipe("partition_bench_torch", "report.pictures=false")
    assert ours.summary["status"] == theirs.summary["status"] == "passed"
    assert ours.metrics["partition.critical_path_latency"] <= theirs.metrics["partition.critical_path_latency"]
    for run in (ours, theirs):  # every device within its budget
        for name in ("dev_0", "dev_1", "dev_2", "dev_3"):
            assert run.metrics[f"partition.devices.{name}.used_bytes"] <= run.metrics[f"partition.devices.{name}.mem_bytes"]


def test_the_partition_report_and_picture_work_for_the_fxflow_backend(run_recipe):
    run = run_recipe("partition_bench")
    for rel in ("partition/partition_report.md", "partition/partition_report.json", "partition/partition_graph.png"):
        assert (run.run_dir / rel).is_file(), rel
    assert "fxflow best mode" in (run.run_dir / "partition/partition_report.md").read_text()


@pytest.mark.parametrize("override,key", [
    ("transforms.partition.mode=cost_aware", "transforms.partition.mode"),
    ("transforms.partition.saturate_host=true", "transforms.partition.saturate_host"),
])
def test_torch_options_are_refused_with_the_fxflow_backend(run_recipe, override, key):
    run = run_recipe("partition_bench", override)
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "config"
    assert key in run.summary["error"]["message"] and "belong to backend=torch" in run.summary["error"]["message"]


def test_fxflow_options_are_refused_with_the_torch_backend(run_recipe):
    run = run_recipe("partition_bench_torch", "transforms.partition.algorithm=milp")
    assert run.summary["status"] == "error"
    assert "transforms.partition.algorithm" in run.summary["error"]["message"]


def test_a_refusal_names_the_blocker_and_the_bytes_short(run_recipe):
    run = run_recipe("large_node_error", "transforms.partition.backend=fxflow", "~transforms.partition.mode")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "partition"
    refusal = {k.removeprefix("partition.refusal."): v for k, v in run.metrics.items() if k.startswith("partition.refusal.")}
    assert refusal["blocker"].startswith("node 'linear'") or "linear" in refusal["explanation"]
    assert refusal["short_bytes"] == refusal["needed_bytes"] - refusal["available_bytes"] > 0
    assert f"short by {refusal['short_bytes']} B" in run.summary["error"]["message"]


def test_a_partitioned_module_from_the_fxflow_backend_runs_across_processes(run_recipe):
    run = run_recipe("distributed_chain", "transforms.partition.backend=fxflow", "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    assert run.check("equivalence.execute")["passed"]
    holding = [k for k, v in run.metrics.items() if k.startswith("partition.devices.") and k.endswith(".partitions") and v]
    assert run.metrics["execute.workers"] == len(holding)  # one worker per device that holds a partition
