"""The linear-time cost model gives torch's latency figures exactly, where torch's recursion cannot go too."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from torch.fx import symbolic_trace
from torch.fx.experimental.accelerator_partitioner import Partitioner, set_parents_and_children
from torch.fx.experimental.partitioner_utils import (
    Device as TorchDevice,
    NodeLatency,
    Partition as TorchPartition,
    PartitionerConfig,
    PartitionMode,
    get_latency_of_partitioned_graph,
    get_partition_to_latency_mapping,
)

from fxflow.models.graph_families import LinearReLUChain, ResidualStack
from fxflow.models.partition_examples import DiamondLinear, WideDiamondLinear
from fxflow.partitioning import (
    Placement,
    ZeroTransferRate,
    build_problem,
    critical_path_latency,
    partition_latencies,
    partition_memory,
    size_nodes,
)
from fxflow.partitioning.placement import partition_graph, topological_partitions
from partition_graphs import brute_force_latency, draw_acyclic_placement, fx_modules, longest_path_triples, problems


def _seed_latency(gm, unweighted):
    """The latency rule torch's tests write by hand."""
    out = {}
    for node in gm.graph.nodes:
        if node.op not in {"output", "placeholder", "get_attr"}:
            total, output = node.size_bytes.total_size, node.size_bytes.output_size
            out[node] = NodeLatency(total, unweighted(total) if total == output else output)
    return out


def _placement_of(problem, partitions) -> Placement:
    """torch's partitions as a Placement (logical ids -> first device with that id)."""
    index = {name: i for i, name in enumerate(problem.names)}
    device = {d.logical_id: i for i, d in reversed(list(enumerate(problem.devices)))}
    partition_of = [0] * problem.num_nodes
    for p in partitions:
        for n in p.nodes:
            if n.name in index:
                partition_of[index[n.name]] = p.partition_id
    ordered = sorted(partitions, key=lambda p: p.partition_id)
    return Placement(tuple(partition_of), tuple(tuple(device[l] for l in p.logical_device_ids) for p in ordered))


def _torch_run(model, inputs, devices, mode, unweighted):
    gm = symbolic_trace(model)
    size_nodes(gm, inputs)
    latency = _seed_latency(gm, unweighted)
    partitioner = Partitioner()
    partitioner.partition_graph(gm, model, PartitionerConfig(devices, mode=mode, transfer_rate_bytes_per_sec=2,
                                                             node_to_latency_mapping=latency))
    problem = build_problem(gm, latency, devices, 2)
    return problem, partitioner.partitions, _placement_of(problem, partitioner.partitions)


def test_seed_partition_latency_figures():
    """test_partition_latency: (128, 80, 160) and (16, 32, 32), critical path 208."""
    devices = [TorchDevice("dev_0", 200, 0), TorchDevice("dev_1", 200, 1)]
    problem, partitions, placement = _torch_run(DiamondLinear(), [torch.rand(4)], devices, PartitionMode.size_based,
                                                lambda total: 2.0 * total)
    assert partition_latencies(problem, placement) == [(128.0, 80.0, 160.0), (16.0, 32.0, 32.0)]
    assert critical_path_latency(problem, placement) == 208.0
    assert partition_memory(problem, placement) == [p.used_mem_bytes for p in partitions]


def test_seed_cost_aware_figure():
    """test_cost_aware_partition: critical path 160 for torch's cost_aware partitions."""
    devices = [TorchDevice(f"dev_{i}", 125, i) for i in range(4)]
    problem, partitions, placement = _torch_run(WideDiamondLinear(), [torch.rand(4)], devices, PartitionMode.cost_aware,
                                                lambda total: 1)
    assert critical_path_latency(problem, placement) == 160.0
    assert partition_memory(problem, placement) == [p.used_mem_bytes for p in partitions]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module=fx_modules(max_nodes=9), data=st.data())
def test_equal_to_torch_helpers(module, data):
    """Random graphs, latencies and acyclic partitions built with torch's own Partition.add_node."""
    gm, inputs = module
    size_nodes(gm, inputs)
    compute = [n for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    latency = {n: NodeLatency(float(data.draw(st.integers(0, 9))), float(data.draw(st.integers(0, 9)))) for n in compute}
    k = data.draw(st.integers(1, 3))
    assign = [data.draw(st.integers(0, k - 1)) for _ in compute]
    logical = [data.draw(st.sampled_from([[0], [1], [0, 1]])) for _ in range(k)]
    devices = [TorchDevice("dev_0", 10**6, 0), TorchDevice("dev_1", 10**6, 1)]
    problem = build_problem(gm, latency, devices, data.draw(st.sampled_from([0.5, 2.0, 3.0])))
    used = sorted(set(assign))
    renumber = {p: i for i, p in enumerate(used)}
    placement = Placement(tuple(renumber[p] for p in assign), tuple(tuple(logical[p]) for p in used))
    firsts = [placement.partition_of.index(p) for p in range(placement.num_partitions)]
    assume(topological_partitions(partition_graph(problem, placement), firsts) is not None)

    partitions = [TorchPartition(i) for i in range(placement.num_partitions)]
    for node, p in zip(compute, placement.partition_of):
        partitions[p].add_node(node)
    for p, part in enumerate(partitions):
        part.logical_device_ids = list(logical[used[p]])
    set_parents_and_children(partitions)
    theirs = get_partition_to_latency_mapping(partitions, latency)
    ours = partition_latencies(problem, placement)
    assert [theirs[p].overall_latency_sec for p in partitions] == [lat.overall_latency_sec for lat in ours]
    for i, (p, lat) in enumerate(zip(partitions, ours)):
        # Where longest paths tie, torch's mem/compute split depends on set order; ours is one of the tied ones.
        tied = longest_path_triples(problem, placement, i)
        assert (lat.overall_latency_sec, lat.mem_latency_sec, lat.computer_latency_sec) in tied
        if len(tied) == 1:
            assert theirs[p] == lat
    rate = problem.transfer_rate_bytes_per_sec
    assert critical_path_latency(problem, placement) == get_latency_of_partitioned_graph(partitions, theirs, rate)
    assert partition_memory(problem, placement) == [p.used_mem_bytes for p in partitions]


@settings(max_examples=40, deadline=None)
@given(problem=problems(max_nodes=7, max_devices=3), data=st.data())
def test_equal_to_path_enumeration(problem, data):
    placement = draw_acyclic_placement(problem, data)
    latencies, critical = brute_force_latency(problem, placement)
    assert [lat.overall_latency_sec for lat in partition_latencies(problem, placement)] == latencies
    assert critical_path_latency(problem, placement) == critical


def test_zero_transfer_rate_divides_by_zero_like_torch():
    gm = symbolic_trace(DiamondLinear())
    size_nodes(gm, [torch.rand(4)])
    latency = _seed_latency(gm, lambda total: 2.0 * total)
    problem = build_problem(gm, latency, [TorchDevice("dev_0", 200, 0), TorchDevice("dev_1", 200, 1)], 0.0)
    split = Placement((0, 0, 0, 1, 1), ((0,), (1,)))
    with pytest.raises(ZeroTransferRate):
        critical_path_latency(problem, split)
    assert issubclass(ZeroTransferRate, ZeroDivisionError)
    assert critical_path_latency(problem, split, free_transfers_at_rate_zero=True) == 160.0 + 32.0
    assert critical_path_latency(problem, Placement((0, 0, 0, 1, 1), ((0,), (0,)))) == 192.0  # same device: free


def _longest_path(problem) -> float:
    graph = nx.DiGraph()
    for v in range(problem.num_nodes):
        graph.add_edge("start", v, weight=problem.weight(v))
        for u in problem.inputs[v]:
            graph.add_edge(u, v, weight=problem.weight(v))
    return nx.dag_longest_path_length(graph)


@pytest.mark.parametrize("model, nodes", [(LinearReLUChain(600), 1200), (ResidualStack(260), 1040)])
def test_deep_graphs_in_one_partition(model, nodes):
    """torch's helpers overflow the stack on the chain and walk 2**260 paths on the residual stack."""
    gm = symbolic_trace(model)
    size_nodes(gm, [torch.rand(2, 16)])
    latency = {n: NodeLatency(float(n.size_bytes.total_size), 1.0)
               for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")}
    problem = build_problem(gm, latency, [TorchDevice("dev_0", 10**9, 0)], 1.0)
    assert problem.num_nodes == nodes
    whole = Placement((0,) * nodes, ((0,),))
    expected = _longest_path(problem)
    assert partition_latencies(problem, whole)[0].overall_latency_sec == pytest.approx(expected, rel=1e-12)
    assert critical_path_latency(problem, whole) == pytest.approx(expected, rel=1e-12)
    if nodes == 1200:
        part = TorchPartition(0)
        part.nodes = {n for n in gm.graph.nodes if n.op != "output"}
        with pytest.raises(RecursionError):
            get_partition_to_latency_mapping([part], latency)


def test_torch_helpers_agree_up_to_float_rounding_and_no_further():
    """fxflow and torch may sum a partition's fractional latencies in another order; the last bits
    may differ. A difference beyond rounding (a wrong latency) is still a disagreement."""
    from fxflow.partitioning.torch_helpers import _differences

    ours = {"partitions": [{"id": 0, "latency": [0.1 + 0.2, 0.7, 1.0]}], "critical_path_latency": 0.3 + 0.6}
    rounded = {"partitions": [{"id": 0, "latency": [0.3, 0.7, 1.0]}], "critical_path_latency": 0.9}
    assert ours["critical_path_latency"] != 0.9 and _differences(ours, rounded) == []
    wrong = {"partitions": [{"id": 0, "latency": [0.3, 0.7, 1.001]}], "critical_path_latency": 0.91}
    assert [d.split(":")[0] for d in _differences(ours, wrong)] == ["partition 0", "critical path"]


def test_a_calibration_file_that_is_not_one_is_refused_naming_the_key(tmp_path):
    """A calibrated latency model reads its file under the record caps; a nested or non-object file
    is one message naming latency_model.path, not a RecursionError or a KeyError."""
    from fxflow.partitioning.latency import CalibratedLatency

    gm = torch.fx.symbolic_trace(torch.nn.Linear(2, 2))
    for content, found in (("[" * 5000 + "]" * 5000, "cannot read a calibration"), ("[1, 2]", "holds a list")):
        path = tmp_path / "calibrated_latency.json"
        path.write_text(content)
        with pytest.raises(ValueError, match=f"latency_model.path={path}: {found}"):
            CalibratedLatency(path=str(path)).mapping(gm, None)
