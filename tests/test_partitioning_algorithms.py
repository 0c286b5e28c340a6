"""Every algorithm gives a valid placement or a clear refusal; the exact ones are exact."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from fxflow.models.partition_examples import DiamondLinear
from fxflow.partitioning import (
    Device,
    PlacementRefused,
    Problem,
    build_problem,
    check_placement,
    objective_value,
    partition,
    size_nodes,
)
from fxflow.partitioning.algorithms.pipeline_dp import usable_starts
from fxflow.partitioning.cost import bottleneck_latency, pipeline_latency
from fxflow.partitioning.placement import device_loads, partition_graph, split_components, topological_partitions
from partition_graphs import best_by_enumeration, draw_acyclic_placement, problems

HEURISTICS = ("pipeline", "list_scheduling", "best")
FAST = {"best": {"kicks": 2}}


def _assert_valid(problem: Problem, result, whole: bool = False) -> None:
    placement = result.placement
    check_placement(problem, placement)  # one partition per node, a device per partition, budgets, no cycle
    assert sorted(set(placement.partition_of)) == list(range(placement.num_partitions))
    assert all(len(devices) == 1 for devices in placement.devices)
    if whole:  # as the algorithms place them, before `partition` splits them
        assert len({devices[0] for devices in placement.devices}) == placement.num_partitions
    graph = partition_graph(problem, placement)
    assert all(q < p for p in range(placement.num_partitions) for q in graph.parents[p])  # ids in data-flow order
    assert result.value == objective_value(problem, placement, result.objective)
    assert result.value <= result.info.get("one_partition_per_device", {}).get("value", result.value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_nodes=10, max_devices=4))
def test_heuristics_place_validly_or_refuse(problem):
    for objective in ("latency", "throughput"):
        for name in HEURISTICS:
            try:
                result = partition(problem, name, objective, **FAST.get(name, {}))
                whole = partition(problem, name, objective, split=False, **FAST.get(name, {}))
            except PlacementRefused as refusal:
                assert refusal.blocker and str(refusal)
                continue
            _assert_valid(problem, result)
            _assert_valid(problem, whole, whole=True)


def _assert_pipeline_is_the_best_contiguous_split(problem: Problem) -> None:
    for objective, measure in (("latency", pipeline_latency), ("throughput", bottleneck_latency)):
        best = best_by_enumeration(problem, measure, contiguous=True)
        try:
            result = partition(problem, "pipeline", objective, split=False)
        except PlacementRefused:
            assert best == math.inf
            continue
        assert result.info["contiguous_optimum"] == best == measure(problem, result.placement)


@settings(max_examples=40, deadline=None)
@given(problem=problems(max_nodes=6, max_devices=3))
def test_pipeline_is_the_best_contiguous_split(problem):
    _assert_pipeline_is_the_best_contiguous_split(problem)


@st.composite
def _tight_problems(draw) -> Problem:
    """Problems whose devices hold little more than the graph: many cuts cannot start a segment
    (the DP keeps its per-start arrays over the usable cuts only)."""
    problem = draw(problems(min_nodes=6, max_nodes=9, max_devices=4))
    share = -(-sum(problem.size_bytes) // len(problem.devices))
    budgets = [share + draw(st.integers(0, share // 3 + 6)) for _ in problem.devices]
    return dataclasses.replace(problem, devices=tuple(Device(d.name, b, d.logical_id)
                                                      for d, b in zip(problem.devices, budgets)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=_tight_problems())
def test_pipeline_is_the_best_contiguous_split_on_tight_devices(problem):
    _assert_pipeline_is_the_best_contiguous_split(problem)


def test_pipeline_skips_cuts_no_state_can_start_from():
    """A 12-node chain over four devices of 3.5 nodes' bytes: only cuts 0, 2-3, 5-7 and 9-10 can start a
    segment, and the split is still the best one enumeration finds."""
    n = 12
    problem = Problem(tuple(f"n{i}" for i in range(n)), (10,) * n, (1,) * n, (0.0,) * n,
                      tuple(float(1 + i % 3) for i in range(n)), ((),) + tuple((i,) for i in range(n - 1)),
                      ((),) * n, (), (), tuple(Device(f"dev_{i}", 36, i) for i in range(4)), 1.0)
    ranges = [(0, 0), (2, 3), (5, 7), (9, 10)]  # prefix bytes within [120 - (4 - k) * 36, k * 36] for k used
    assert usable_starts(n, ranges).nonzero()[0].tolist() == [0, 2, 3, 5, 6, 7, 9, 10]
    for objective, measure in (("latency", pipeline_latency), ("throughput", bottleneck_latency)):
        result = partition(problem, "pipeline", objective, split=False)
        assert result.info["contiguous_optimum"] == best_by_enumeration(problem, measure, contiguous=True)
        cuts = [v for v in range(1, n) if result.placement.partition_of[v] != result.placement.partition_of[v - 1]]
        assert set(cuts) <= {2, 3, 5, 6, 7, 9, 10}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_nodes=5, max_devices=3))
def test_milp_is_optimal_and_no_worse_than_heuristics(problem):
    objective = "latency"
    best = best_by_enumeration(problem, lambda p, placement: objective_value(p, placement, objective))
    try:
        exact = partition(problem, "milp", objective, split=False)
    except PlacementRefused:
        assert best == math.inf
        return
    _assert_valid(problem, exact, whole=True)
    assert exact.optimal and exact.value == pytest.approx(best, rel=1e-9, abs=1e-9)
    for name in HEURISTICS:
        try:
            result = partition(problem, name, objective, split=False, **FAST.get(name, {}))
        except PlacementRefused:
            continue
        assert exact.value <= result.value * (1 + 1e-9) + 1e-9


@settings(max_examples=40, deadline=None)
@given(problem=problems(max_nodes=9, max_devices=4), data=st.data())
def test_splitting_partitions_costs_nothing(problem, data):
    """Independent pieces of a partition on its device: same memory, acyclic, never slower."""
    whole = draw_acyclic_placement(problem, data)
    pieces = split_components(problem, whole)
    assert device_loads(problem, pieces) == device_loads(problem, whole)
    assert topological_partitions(partition_graph(problem, pieces), [pieces.partition_of.index(p) for p in
                                                                     range(pieces.num_partitions)]) is not None
    for v, u in ((v, u) for v in range(problem.num_nodes) for u in range(v)):
        if pieces.partition_of[u] == pieces.partition_of[v]:
            assert whole.partition_of[u] == whole.partition_of[v]
    for objective in ("latency", "throughput"):
        assert objective_value(problem, pieces, objective) <= objective_value(problem, whole, objective)


def _chain(sizes, budgets) -> Problem:
    n = len(sizes)
    return Problem(tuple(f"n{i}" for i in range(n)), tuple(sizes), tuple(1 for _ in sizes), (1.0,) * n, (1.0,) * n,
                   tuple(((i - 1,) if i else ()) for i in range(n)), ((),) * n, (), (),
                   tuple(Device(f"dev_{i}", b, i) for i, b in enumerate(budgets)), 1.0)


@pytest.mark.parametrize("name", [*HEURISTICS, "milp"])
def test_refusal_names_the_node_that_does_not_fit(name):
    with pytest.raises(PlacementRefused) as caught:
        partition(_chain([10, 50, 10], [40, 30]), name)
    refusal = caught.value
    assert isinstance(refusal, RuntimeError)
    assert refusal.blocker == "n1" and refusal.short_bytes == 10
    assert "'n1' needs 50 B" in str(refusal) and "dev_0" in str(refusal) and "short by 10 B" in str(refusal)


@pytest.mark.parametrize("name", [*HEURISTICS, "milp"])
def test_refusal_names_the_budgets_that_do_not_add_up(name):
    with pytest.raises(PlacementRefused) as caught:
        partition(_chain([30, 30, 30], [40, 40]), name)
    assert caught.value.blocker == "all devices" and caught.value.short_bytes == 10
    assert "dev_0 40 B, dev_1 40 B" in str(caught.value)


def test_seed_diamond_on_two_devices():
    """torch's partition_latency scenario: fxflow's placements are valid and no slower than torch's 208."""
    gm = torch.fx.symbolic_trace(DiamondLinear())
    size_nodes(gm, [torch.rand(4)])
    latency = {n: torch.fx.experimental.partitioner_utils.NodeLatency(
        n.size_bytes.total_size, 2.0 * n.size_bytes.total_size if n.size_bytes.total_size == n.size_bytes.output_size
        else n.size_bytes.output_size) for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")}
    problem = build_problem(gm, latency, [Device("dev_0", 200, 0), Device("dev_1", 200, 1)], 2)
    for name in (*HEURISTICS, "milp"):
        result = partition(problem, name)
        _assert_valid(problem, result)
        assert result.value <= 208.0
