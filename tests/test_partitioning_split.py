"""Placements become split modules that compute what the model computes, with torch's facts."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.fx.experimental.partitioner_utils import (
    NodeLatency,
    get_latency_of_partitioned_graph,
    get_partition_to_latency_mapping,
)

from fxflow.partitioning import (
    Device,
    PlacementRefused,
    build_problem,
    describe,
    partition,
    size_nodes,
    split_graph,
    to_torch_partitions,
)
from fxflow.partitioning.torch_backend import describe_partitions
from partition_graphs import fx_modules


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module=fx_modules(max_nodes=10), data=st.data())
def test_split_module_computes_what_the_graph_computes(module, data):
    gm, inputs = module
    size_nodes(gm, inputs)
    total = sum(n.size_bytes.total_size for n in gm.graph.nodes if n.op != "output")
    k = data.draw(st.integers(1, 4))
    low = total // k + 1 if k > 1 else total  # budgets that make several partitions likely
    devices = [Device(f"dev_{i}", data.draw(st.integers(low, max(low, 2 * total // k))), i) for i in range(k)]
    latency = {n: NodeLatency(float(data.draw(st.integers(0, 5))), float(data.draw(st.integers(0, 5))))
               for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")}
    problem = build_problem(gm, latency, devices, 2.0)
    name = data.draw(st.sampled_from(["pipeline", "list_scheduling", "best"]))
    try:
        result = partition(problem, name, **({"kicks": 2} if name == "best" else {}))
    except PlacementRefused:
        return
    split = split_graph(gm, problem, result.placement)
    children = sorted(name for name, _ in split.named_children() if name.startswith("submod_"))
    assert children == sorted(f"submod_{p}" for p in range(result.placement.num_partitions))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 99)))
    for args in (inputs, [torch.randn(2, 4, generator=gen), torch.randn(2, 4, generator=gen)]):
        torch.testing.assert_close(split(*args), gm(*args), rtol=0, atol=0)

    facts = describe(problem, result.placement, mode=name)
    partitions = to_torch_partitions(gm, problem, result.placement)
    theirs = describe_partitions(partitions, devices, name)
    for key in ("mode", "num_partitions", "devices", "idle_devices"):
        assert facts[key] == theirs[key]
    for ours, torch_entry in zip(facts["partitions"], theirs["partitions"]):
        assert {k: v for k, v in ours.items() if k != "latency"} == torch_entry
    per_partition = get_partition_to_latency_mapping(partitions, latency)
    assert [e["latency"][2] for e in facts["partitions"]] == [per_partition[p].overall_latency_sec for p in partitions]
    assert facts["critical_path_latency"] == get_latency_of_partitioned_graph(partitions, per_partition, 2.0)
