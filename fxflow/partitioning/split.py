"""Turn a placement into what torch's backend produces: the split module, torch `Partition`
objects, and the JSON facts of `fxflow.transforms.partition.describe_partitions`.

    split = split_graph(gm, problem, placement)        # submod_<pid> children, like torch's
    facts = describe(problem, placement, mode="pipeline", with_latency=True)
    partitions = to_torch_partitions(gm, problem, placement)   # for torch's helpers and the picture
"""

from __future__ import annotations

from typing import Any, Sequence

from torch.fx import GraphModule
from torch.fx._lazy_graph_module import _use_lazy_graph_module
from torch.fx.experimental.partitioner_utils import Partition as TorchPartition
from torch.fx.passes.split_module import split_module

from fxflow.partitioning.cost import ZeroTransferRate, critical_path_latency, partition_latencies
from fxflow.partitioning.placement import Placement, check_placement, partition_aux, partition_graph, partition_memory
from fxflow.partitioning.problem import Problem


def _nodes_by_name(gm: GraphModule) -> dict[str, Any]:
    return {n.name: n for n in gm.graph.nodes}


def split_graph(gm: GraphModule, problem: Problem, placement: Placement) -> GraphModule:
    """torch's `split_module(gm, gm, node -> partition id)`: one `submod_<pid>` per partition.

    The modules are built lazily (torch's `_LazyGraphModule`, what torch.compile uses): eagerly,
    the parent's constructor generates and compiles every child's code once more, which is most
    of the time at 100,000 nodes. Each child's code is generated when first called or read."""
    check_placement(problem, placement)
    by_name = _nodes_by_name(gm)
    pid = {by_name[name]: placement.partition_of[i] for i, name in enumerate(problem.names)}
    with _use_lazy_graph_module(True):
        return split_module(gm, gm, lambda node: pid[node])


def to_torch_partitions(gm: GraphModule, problem: Problem, placement: Placement) -> list[TorchPartition]:
    """torch `Partition`s equal to what `Partition.add_node` would build for this placement (nodes with
    the placeholders and constants they read, used_mem_bytes, logical devices, parents and children)."""
    by_name = _nodes_by_name(gm)
    memory = partition_memory(problem, placement)
    aux = partition_aux(problem, placement)
    graph = partition_graph(problem, placement)
    partitions = [TorchPartition(p) for p in range(placement.num_partitions)]
    for v, p in enumerate(placement.partition_of):
        partitions[p].nodes.add(by_name[problem.names[v]])
    for p, part in enumerate(partitions):
        part.nodes.update(by_name[problem.aux_names[a]] for a in aux[p])
        part.used_mem_bytes = memory[p]
        part.logical_device_ids = placement.logical_device_ids(problem, p)
        part.parents = {partitions[q] for q in graph.parents[p]}
        part.children = {partitions[c] for c in graph.children[p]}
    return partitions


def placement_of(problem: Problem, partitions: Sequence[TorchPartition]) -> Placement:
    """The placement torch's Partitioner made: partition p is `partitions[p]`, on the devices of its
    logical ids. Its figures under fxflow's cost model equal torch's own helpers' (tested), in
    linear time where torch's walk every path."""
    owner = {node.name: p for p, part in enumerate(partitions) for node in part.nodes}
    device_of = {}
    for index, device in enumerate(problem.devices):
        device_of.setdefault(device.logical_id, index)
    return Placement(partition_of=tuple(owner[name] for name in problem.names),
                     devices=tuple(tuple(device_of[lid] for lid in part.logical_device_ids if lid in device_of)
                                   for part in partitions))


def describe(problem: Problem, placement: Placement, mode: str, with_latency: bool = True) -> dict[str, Any]:
    """The facts torch's backend records (`describe_partitions` keys, per-partition `latency` and
    `critical_path_latency`), for this placement."""
    memory = partition_memory(problem, placement)
    aux = partition_aux(problem, placement)
    graph = partition_graph(problem, placement)
    members = placement.members()
    entries = []
    for p in range(placement.num_partitions):
        compute = sorted(problem.names[v] for v in members[p])
        entries.append({
            "id": p,
            "nodes": sorted(compute + [problem.aux_names[a] for a in aux[p]]),
            "compute_nodes": compute,
            "used_mem_bytes": memory[p],
            "logical_device_ids": placement.logical_device_ids(problem, p),
            "devices": [problem.devices[d].name for d in placement.devices[p]],
            "parents": sorted(graph.parents[p]),
            "children": sorted(graph.children[p]),
        })
    device_use = {}
    for d, dev in enumerate(problem.devices):
        hosted = [p for p in range(placement.num_partitions) if d in placement.devices[p]]
        device_use[dev.name] = {"logical_id": dev.logical_id, "mem_bytes": dev.mem_bytes, "partitions": hosted,
                                "used_bytes": sum(memory[p] for p in hosted)}
    facts: dict[str, Any] = {
        "mode": mode,
        "num_partitions": placement.num_partitions,
        "partitions": entries,
        "devices": device_use,
        "idle_devices": [name for name, use in device_use.items() if not use["partitions"]],
    }
    if with_latency:
        latencies = partition_latencies(problem, placement)
        for entry, lat in zip(entries, latencies):
            entry["latency"] = [float(v) for v in lat]
        try:
            facts["critical_path_latency"] = float(critical_path_latency(problem, placement, latencies, graph))
        except ZeroTransferRate as exc:
            facts["critical_path_latency_unavailable"] = str(exc)
    return facts

