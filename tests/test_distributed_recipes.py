"""The distributed recipes: partitioned by the partition stage, run by one worker process per
device, proven against the eager model on the declared and fresh inputs, and measured beside
the latency model's prediction; the measurement fed back into the partitioner."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from process_tree import alive  # tests/ is on sys.path

REPO = Path(__file__).resolve().parents[1]
QUICK = ("transforms.execute.repeats=3", "transforms.execute.warmup=1", "expect.strict=true")


def rows(metrics: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """A recorded list of mappings back from its flattened metrics (`prefix.<i>.<field>`)."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in metrics.items():
        if key.startswith(prefix + "."):
            index, _, field = key[len(prefix) + 1:].partition(".")
            found.setdefault(int(index), {})[field] = value
    return [found[i] for i in sorted(found)]


def assert_ran_across_processes(run: Any, workers: int) -> None:
    """Passed, proven on every input set against the eager model by the distributed module, whose
    processes (a driver and `workers` workers, none of them this one) have all ended."""
    assert run.summary["status"] == "passed", [c for c in run.summary["checks"] if not c["passed"]] or run.summary["error"]
    proof = run.check("equivalence.execute")
    assert proof["passed"] and proof["input_sets"] == "3/3"
    assert run.metrics["execute.graph.module"] == "fxflow.distributed.executor.DistributedModule"
    pids = [r["pid"] for r in rows(run.metrics, "execute.ranks")]
    assert len(set(pids)) == workers + 1 and os.getpid() not in pids
    assert [pid for pid in pids if alive(pid)] == []


def test_sparse_nn_tables_on_separate_workers(run_recipe):
    run = run_recipe("distributed_sparse_nn", *QUICK, "report.pictures=false")
    assert_ran_across_processes(run, workers=2)
    metrics = run.metrics
    parts = rows(metrics, "partition.partitions")
    placed = {p["id"]: p for p in rows(metrics, "execute.placement")}
    tables = [p["id"] for p in parts if all(n.startswith("embedding_layers") for n in p["compute_nodes"])]
    assert len(tables) == 2 and placed[tables[0]]["rank"] != placed[tables[1]]["rank"]
    for part in parts:  # on a device the partitioner gave it; replicated ones say among which
        assert placed[part["id"]]["device_name"] in part["devices"]
        assert placed[part["id"]]["replicated_on"] == (part["devices"] if len(part["devices"]) > 1 else [])
    dag = {tuple(edge) for edge in metrics["execute.partition_dag"]}
    for part in parts:  # the workers ran the partitioner's DAG
        assert sorted(a for a, b in dag if b == part["id"] and isinstance(a, int)) == part["parents"]
        assert sorted(b for a, b in dag if a == part["id"] and isinstance(b, int)) == part["children"]
    edges = {e["value"]: e for e in rows(metrics, "execute.edges")}
    assert edges["a"]["bytes"] == 2 * 4 * 4 and edges["a"]["src_rank"] == 0
    assert not [v for v in edges if v.startswith("_tensor_constant")]  # frozen ids are copied once, not sent
    measured = rows(metrics, "execute.partitions")
    calibration = json.loads((run.run_dir / "execute" / "calibrated_latency.json").read_text())
    assert [(p["id"], p["compute_s"]) for p in calibration["partitions"]] == [(p["id"], p["measured_s"]) for p in measured]


def test_chain_pipelined_then_repartitioned_with_what_was_measured(run_recipe):
    run = run_recipe("distributed_chain", *QUICK)
    assert_ran_across_processes(run, workers=4)
    metrics = run.metrics
    assert [(e["src_rank"], e["dst_rank"]) for e in rows(metrics, "execute.edges")] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    measured = rows(metrics, "execute.partitions")
    for part in measured:
        assert part["ratio"] == pytest.approx(part["measured_s"] / part["predicted"])
    assert metrics["execute.critical_path.predicted"] == metrics["partition.critical_path_latency"]
    assert metrics["execute.critical_path.measured_dag_s"] >= sum(p["measured_s"] for p in measured)
    assert metrics["execute.pipeline.batch"] == 16 and metrics["execute.pipeline.split_inputs"] == ["x"]
    files = run.summary["files"]["execute"]
    assert {"execute/execution_report.md", "execute/execution_partitions.png"} <= set(files)
    report = (run.run_dir / "execute" / "execution_report.md").read_text()
    assert f"critical path predicted {metrics['execute.critical_path.predicted'] * 1e3:.3f} ms" in report

    # fed back: torch's partitioner with the calibrated latencies predicts what was measured
    calibration = run.run_dir / "execute" / "calibrated_latency.json"
    rate = json.loads(calibration.read_text())["transfer"]["bytes_per_s"]
    again = run_recipe("distributed_chain", "~transforms.execute", "~expect.metrics.execute", "report.key_metrics=[]",
                       "report.pictures=false", "latency@transforms.partition.latency_model=calibrated",
                       f"transforms.partition.latency_model.path={calibration}",
                       f"transforms.partition.transfer_rate_bytes_per_sec={rate}")
    assert again.summary["status"] == "passed", again.summary["error"]
    for part in measured:
        assert again.metrics[f"partition.partitions.{part['id']}.latency"][2] == pytest.approx(part["measured_s"])
    crossings = 3 * 16 * 64 * 4  # three stage boundaries, one [16, 64] float32 activation each
    assert again.metrics["partition.critical_path_latency"] == pytest.approx(
        sum(p["measured_s"] for p in measured) + crossings / rate)


def test_branches_run_side_by_side(run_recipe):
    run = run_recipe("distributed_branches", *QUICK, "report.pictures=false")
    assert_ran_across_processes(run, workers=3)
    metrics = run.metrics
    assert [r["partitions"] for r in rows(metrics, "execute.ranks")] == [[], [0, 1, 4], [2], [3]]
    # the stem fans out to three branches (two of them on other workers), which join in the head
    assert {tuple(e) for e in metrics["execute.partition_dag"]} == {
        ("input", 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, "output")}
    path = metrics["execute.critical_path.measured_path"]
    assert path[:2] == ["input", 0] and path[-2:] == [4, "output"] and len(path) == 5  # through one branch
    assert metrics["execute.pipeline"] is None


def test_calibration_run_fits_a_cost_model_that_explains_its_own_partitions(run_recipe):
    """The calibration recipe's fitted file: eight measured partitions, the nodes timed at three batch
    sizes, a coefficient for each element-wise kind MiniGPT computes, and the file's own prediction
    of each partition it ran close to what was measured."""
    import yaml
    from torch.fx.passes.split_module import split_module

    from fxflow.distributed.cost_fit import predict_placement
    from fxflow.models.uneven import UnevenMix
    from fxflow.partitioning.fitted_cost import FittedCost

    run = run_recipe("distributed_calibrate_cost", "report.pictures=false")
    assert_ran_across_processes(run, workers=2)
    cost = FittedCost.load(run.run_dir / "execute" / "fitted_cost.json")
    recipe = yaml.safe_load((REPO / "recipes" / "distributed_calibrate_cost.yaml").read_text())
    nodes = recipe["transforms"]["partition"]["node_to_partition"]
    assert cost.calibration["partitions"] == 8 and cost.calibration["batch_scales"] == [1.0, 0.25, 4.0]
    assert cost.calibration["starts"] == run.metrics["execute.fitted_cost.starts"] == 3  # three starts read
    assert cost.calibration["timed_nodes"] == 3 * cost.calibration["nodes"] == 3 * len(nodes)
    assert cost.coefficients["flops"] > 0 and cost.coefficients["param_bytes"] > 0
    assert {f"elements:{k}" for k in ("softmax", "masked_fill", "embedding", "layernorm", "gelu")} <= set(cost.coefficients)
    measured = {p["id"]: p["measured_min_s"] for p in rows(run.metrics, "execute.partitions")}
    gm = torch.fx.symbolic_trace(UnevenMix())
    split = split_module(gm, gm, lambda n: nodes[n.name])
    predicted = predict_placement(cost, split, {k: (1 + k % 2, "cpu") for k in range(8)},
                                  [torch.randint(0, 1024, (4, 32))])
    errors = sorted(abs(predicted["partitions"][k] / measured[k] - 1) for k in measured)
    assert errors[len(errors) // 2] < 0.5, errors  # a loaded machine's noise, not a wrong fit (idle: about 10%)


def test_a_fit_that_fails_ends_the_workers_and_names_the_key(run_recipe, monkeypatch):
    """The fit runs after the measurement; when it fails (here: the model cannot run a scaled batch)
    the run is an error naming fit_batch_scales, and the stage's workers end with it."""
    import fxflow.distributed.cost_fit as cost_fit

    def cannot(*args, **kwargs):
        raise cost_fit.ScaledBatchFailed("the model fails with its inputs' first dimension scaled by 4")

    monkeypatch.setattr(cost_fit, "fit_cost", cannot)
    run = run_recipe("distributed_calibrate_cost", *QUICK, "report.pictures=false", "transforms.execute.fit_starts=1")
    assert run.summary["status"] == "error"
    assert "fit_batch_scales" in json.dumps(run.summary["error"])
    pids = [r["pid"] for r in rows(run.metrics, "execute.ranks")]
    assert len(pids) == 3 and [pid for pid in pids if alive(pid)] == []


def test_a_batch_scale_that_is_not_positive_is_refused_naming_the_key(run_recipe):
    run = run_recipe("distributed_calibrate_cost", *QUICK, "report.pictures=false",
                     "transforms.execute.fit_batch_scales=[0.25,0]")
    assert run.summary["status"] == "error"
    assert "fit_batch_scales" in json.dumps(run.summary)
