"""Lower bounds hold for every plan (the MILP's optimum, random plans with several partitions per
device), are tight where they should be, and the recorded gap follows from them; cutting
partitions by arrival time never makes a plan worse and helps where branches wait for a join."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from torch.fx import symbolic_trace

from fxflow.models.graph_families import family_model
from fxflow.partitioning import Device, Placement, PlacementRefused, build_problem, objective_value, partition, size_nodes
from fxflow.partitioning.arrival import split_by_arrival
from fxflow.partitioning.bounds import certificate, forced_transfer_seconds, gap, heaviest_path, lower_bound
from fxflow.partitioning.errors import InvalidPlacement
from fxflow.partitioning.latency import SizeRuleLatency
from fxflow.partitioning.placement import check_placement
from partition_graphs import problems


def _family_problem(family: str, nodes: int, devices: int, fraction: float):
    model, inputs = family_model(family, nodes)
    gm = symbolic_trace(model)
    size_nodes(gm, inputs)
    total = sum(n.size_bytes.total_size for n in gm.graph.nodes if n.op != "output")
    devs = [Device(f"dev_{i}", int(total * fraction), i) for i in range(devices)]
    return build_problem(gm, SizeRuleLatency().mapping(gm, inputs), devs, 2.0)


@st.composite
def general_plans(draw, problem):
    """Any grouping of the nodes into partitions, each on any device (several on one device
    allowed), kept when it fits and has no cycle: the plans the bound speaks of."""
    n, k = problem.num_nodes, len(problem.devices)
    labels = [draw(st.integers(0, n - 1)) for _ in range(n)]
    used = sorted(set(labels))
    devices = tuple((draw(st.integers(0, k - 1)),) for _ in used)
    placement = Placement(tuple(used.index(label) for label in labels), devices)
    try:
        check_placement(problem, placement)
    except InvalidPlacement:
        assume(False)
    return placement


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problem=problems(max_nodes=7, max_devices=3), data=st.data())
def test_no_plan_beats_the_bound(problem, data):
    plan = data.draw(general_plans(problem))
    for objective in ("latency", "throughput"):
        assert lower_bound(problem, objective).value <= objective_value(problem, plan, objective) * (1 + 1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_nodes=6, max_devices=3))
def test_bound_never_exceeds_the_milp_optimum(problem):
    try:
        exact = partition(problem, "milp", "latency", split=False, time_limit_s=20)
    except PlacementRefused:
        return
    assume(exact.optimal)
    bound = lower_bound(problem, "latency")
    assert bound.value <= exact.value * (1 + 1e-12)
    assert bound.value == max(bound.candidates.values())
    assert bound.candidates["critical_path"] <= bound.value


def test_forced_transfers_are_exact_on_a_chain():
    """A chain's plans are contiguous splits: the bound is the optimum, and fxflow reaches it."""
    for devices in (2, 4, 16):
        problem = _family_problem("chain", 62, devices, 1.2 / devices)
        bound = lower_bound(problem, "latency")
        plan = partition(problem, "best", "latency", time_limit_s=2.0)
        assert bound.kind == "path_transfers" and bound.value > bound.candidates["critical_path"]
        assert bound.value == pytest.approx(plan.value, rel=1e-12)


def test_forced_transfers_follow_memory():
    """The same path pays nothing while one device holds it and more as the devices shrink."""
    problem = _family_problem("chain", 30, 1, 1.0)
    _, path = heaviest_path(problem)
    total = sum(problem.size_bytes)
    paid = []
    for share in (1.0, 0.5, 0.25):
        devices = tuple(Device(f"d{i}", int(total * share * 1.1), i) for i in range(8))
        squeezed = build_like(problem, devices)
        paid.append(forced_transfer_seconds(squeezed, path))
    assert paid[0] == 0 and 0 < paid[1] < paid[2]
    assert forced_transfer_seconds(build_like(problem, (Device("tiny", 1, 0),)), path) is None


def build_like(problem, devices):
    from dataclasses import replace

    return replace(problem, devices=devices)


def test_gap_is_what_the_bound_proves():
    assert gap(110.0, 100.0) == pytest.approx(10 / 110)
    assert gap(0.0, 0.0) == 0.0
    problem = _family_problem("residual", 60, 4, 0.3)
    plan = partition(problem, "best", "latency", time_limit_s=1.0)
    facts = certificate(problem, "latency", plan.value)
    assert facts["lower_bound"] <= plan.value
    assert facts["gap"] == pytest.approx((plan.value - facts["lower_bound"]) / plan.value)
    assert facts["lower_bound"] == facts["lower_bound_candidates"][facts["lower_bound_kind"]]
    with pytest.raises(ValueError, match="objective"):
        lower_bound(problem, "speed")


def test_bound_without_devices_is_the_critical_path():
    problem = _family_problem("chain", 62, 4, 0.3)
    loose = lower_bound(problem, "latency", partitions_on_devices=False)
    assert loose.kind == "critical_path" and loose.value < lower_bound(problem, "latency").value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(max_nodes=10, max_devices=3), data=st.data())
def test_arrival_cuts_never_hurt(problem, data):
    from partition_graphs import draw_acyclic_placement

    placement = draw_acyclic_placement(problem, data)
    try:
        check_placement(problem, placement)
    except InvalidPlacement:
        assume(False)
    cut = split_by_arrival(problem, placement)
    check_placement(problem, cut)  # within budget, acyclic, every node placed
    before = objective_value(problem, placement, "latency")
    assert objective_value(problem, cut, "latency") <= before
    moved = [tuple(placement.devices[p]) for p in placement.partition_of]
    assert [tuple(cut.devices[p]) for p in cut.partition_of] == moved  # every node stays on its device


def test_arrival_cuts_let_branches_run_beside_a_slow_remote_one():
    """sparse_nn: the device holding the concatenation also holds small tables; uncut, they run
    again after the largest table arrives. Cut, the plan is within 0.1% of the bound."""
    problem = _family_problem("sparse_nn", 64, 4, 0.3)
    whole = partition(problem, "best", "latency", split=False, time_limit_s=1.0)
    plan = partition(problem, "best", "latency", time_limit_s=1.0)
    bound = lower_bound(problem, "latency").value
    assert whole.value > 1.15 * bound
    assert plan.value <= 1.001 * bound
    assert len({d for devs in plan.placement.devices for d in devs}) <= len(problem.devices)


def test_partition_stage_records_the_certificate(run_recipe):
    run = run_recipe("partition_bench")
    m = run.metrics
    assert run.summary["status"] == "passed"
    assert 0 < m["partition.lower_bound"] <= m["partition.critical_path_latency"]
    expected = (m["partition.critical_path_latency"] - m["partition.lower_bound"]) / m["partition.critical_path_latency"]
    assert m["partition.gap"] == pytest.approx(expected)
    assert m["partition.lower_bound_kind"] in ("critical_path", "path_transfers")
    assert math.isfinite(m["partition.bound_seconds"])
    report = (run.run_dir / "partition" / "partition_report.md").read_text()
    assert "no plan does better than" in report
    torch_run = run_recipe("partition_bench_torch")
    t = torch_run.metrics
    assert t["partition.lower_bound"] == pytest.approx(m["partition.lower_bound"])  # same problem, same bound
    assert t["partition.gap"] >= m["partition.gap"]
