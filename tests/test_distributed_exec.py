"""Split modules executed with one process per device give the eager model's outputs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.experimental.partitioner_utils import get_latency_of_one_partition
from torch.fx.passes.split_module import split_module

from fxflow.checks.equivalence import call_replayed, compare_outputs as compare
from fxflow.inputs import InputSet
from fxflow.distributed import DistributedModule, build_plan, placement_from_facts, run_partitioned
from fxflow.distributed.calibration import calibrated_latency, node_latency_mapping
from fxflow.distributed.cases import branches_case, chain_case, sparse_nn_case
from fxflow.distributed.compare import compare_with_prediction
from fxflow.distributed.wire import CHUNK_BYTES

QUICK = {"repeats": 2, "warmup": 1, "probe_repeats": 2}


def _matches_eager(case, outputs, input_sets):
    for inputs, out in zip(input_sets, outputs):
        ok, detail, _ = compare(call_replayed(case.model, InputSet(dict(inputs)), case.rng_seed), out, {})
        assert ok, detail


def test_sparse_nn_on_three_devices():
    case = sparse_nn_case(predict=False)
    fresh = {"a": torch.rand(2, 4), "b": torch.randint(0, 10, (8,)), "offset": torch.tensor([0, 5])}
    placement = placement_from_facts(case.facts["partitions"])
    with DistributedModule(case.split, placement) as dm:
        outputs = dm.run([case.inputs, fresh])
        measurement = dm.measure(case.inputs, **QUICK)
    _matches_eager(case, outputs, [case.inputs, fresh])
    # the record says where the replicated (dense) partitions ran, among which devices
    replicated = [p for p in measurement["placement"] if p["replicated_on"]]
    assert replicated and all(p["device_name"] in p["replicated_on"] for p in replicated)
    assert {p["id"] for p in measurement["partitions"]} == {e["id"] for e in case.facts["partitions"]}
    assert all(p["compute_s"] > 0 for p in measurement["partitions"])
    crossing = {e["value"]: e for e in measurement["edges"]}
    assert crossing["a"]["bytes"] == case.inputs["a"].numel() * 4 and crossing["a"]["src_rank"] == 0
    assert all(e["transfer_s"] > 0 for e in measurement["edges"])
    assert measurement["end_to_end_s"] > 0 and measurement["pipeline"] is None


def test_chain_in_four_stages_pipelined_and_compared():
    case = chain_case(width=32, depth=8, batch=16)
    placement = placement_from_facts(case.facts["partitions"])
    assert sorted(placement.rank_devices()) == [1, 2, 3, 4]
    with DistributedModule(case.split, placement) as dm:
        out = dm(case.inputs["x"])
        measurement = dm.measure(case.inputs, microbatches=4, **QUICK)
    _matches_eager(case, [out], [case.inputs])
    assert json.loads(json.dumps(measurement)) == measurement
    pipeline = measurement["pipeline"]
    assert pipeline["chain"] and pipeline["microbatches"] == 4 and pipeline["matches_full_batch"]
    assert pipeline["samples_per_s"] > 0

    table = compare_with_prediction(measurement, case.facts)
    for row in table["partitions"]:
        assert row["ratio"] == pytest.approx(row["measured_s"] / row["predicted"])
    path = table["critical_path"]
    assert path["predicted"] == case.facts["critical_path_latency"]
    assert path["measured_path"] == ["input", 0, 1, 2, 3, "output"]
    assert path["measured_dag_s"] >= sum(p["compute_s"] for p in measurement["partitions"])

    # fed back: torch's own partition latency over the calibrated node latencies is the measured time
    calibration = calibrated_latency(measurement, case.split)
    mapping = node_latency_mapping(calibration, case.traced, weights=case.latency_mapping)
    for part, measured in zip(case.partitions, sorted(measurement["partitions"], key=lambda p: p["id"])):
        assert part.partition_id == measured["id"]
        assert get_latency_of_one_partition(part, mapping).overall_latency_sec == pytest.approx(measured["compute_s"])
    assert calibration["transfer"]["bytes_per_s"] > 0


def test_parallel_branches():
    case = branches_case(predict=False, width=32)
    out, record = run_partitioned(case.split, placement_from_facts(case.facts["partitions"]), case.inputs, measure=False)
    _matches_eager(case, [out], [case.inputs])
    assert [r["partitions"] for r in record["ranks"]] == [[], [0, 1, 4], [2], [3]]
    # the stem fans out to three branches (two of them on other workers), which join in the head
    assert {tuple(e) for e in record["partition_dag"]} == {
        ("input", 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, "output")}
    assert not record["chain"]


class _Nested(nn.Module):
    def forward(self, x: torch.Tensor, scale: int) -> dict:
        parts = torch.split(x, 2, dim=1)
        rows = x.size(0)
        y = torch.cat(parts, dim=1) * scale + rows
        return {"y": y, "parts": [parts[0], parts[1]], "rows": rows, "scale": scale}


def test_nested_and_non_tensor_values_cross_processes():
    model = _Nested()
    gm = symbolic_trace(model)
    stage = {"split": 0, "size": 0}
    split = split_module(gm, model, lambda node: stage.get(node.name, 1))
    # the tuple from torch.split and the int from size() cross as they are
    edges = build_plan(split, {0: (1, "cpu"), 1: (2, "cpu")}).edges
    assert {"scale", "getitem", "getitem_1"} <= {e.value for e in edges}
    x = torch.randn(3, 4)
    with DistributedModule(split, {0: (1, "cpu"), 1: (2, "cpu")}) as dm:
        out = dm(x, 3)
    expected = model(x, 3)
    ok, detail, _ = compare(expected, out, {})
    assert ok, detail
    assert type(out["parts"]) is list and out["rows"] == 3


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        return y + 1


def test_values_larger_than_a_message_cross_in_chunks():
    model = _Scale()
    split = split_module(symbolic_trace(model), model, lambda node: 0 if node.name == "mul" else 1)
    x = torch.randn(3, 100_000)  # 1.2 MB: several chunks each way
    assert x.numel() * 4 > 4 * CHUNK_BYTES
    with DistributedModule(split, {0: (1, "cpu"), 1: (2, "cpu")}) as dm:
        out = dm(x)
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)

