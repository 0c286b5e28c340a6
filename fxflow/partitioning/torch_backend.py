"""torch's accelerator Partitioner (`Partitioner.partition_graph`) as a partition backend.

`partition_with_torch` returns torch's `module_with_submodules` (one `submod_<id>` child per
partition) and JSON facts: per partition its nodes, memory, logical devices, parents,
children and, with a latency mapping, the (mem, compute, overall) latency triple; the
critical-path latency; device use and idle devices. When torch refuses, `PartitionRefused`
carries the same facts under `refusal`, saying in words which node or budget did not fit.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch.fx import GraphModule, Node
from torch.fx.experimental.accelerator_partitioner import Partitioner, set_parents_and_children
from torch.fx.experimental.partitioner_utils import (
    Device,
    NodeLatency,
    Partition as TorchPartition,
    PartitionerConfig,
    PartitionMode,
)

from fxflow.nodes import NON_COMPUTE_OPS

MODES = ("size_based", "sparse_nn", "cost_aware", "kl_based", "aot_based")


class PartitionRefused(RuntimeError):
    """The backend refused the device list; `facts` say which node or budget did not fit."""

    def __init__(self, message: str, facts: dict[str, Any] | None = None):
        super().__init__(message)
        self.facts = facts or {}


def partition_with_torch(
    gm: GraphModule,
    devices: Sequence[Any],
    mode: str,
    *,
    transfer_rate_bytes_per_sec: float = 0.0,
    latency: dict[Node, NodeLatency] | None = None,
    node_to_partition: dict[str, int] | None = None,
    partition_to_logical_devices: dict[int, list[int]] | None = None,
    saturate_host: bool = False,
    what_if_removed: Sequence[str] = (),
) -> tuple[GraphModule, dict[str, Any]]:
    """Partition `gm` (nodes already sized) over `devices` (name, mem_bytes, logical_id)."""
    latency = latency or {}
    config = PartitionerConfig(
        [Device(d.name, d.mem_bytes, d.logical_id) for d in devices],
        mode=PartitionMode[mode],
        transfer_rate_bytes_per_sec=transfer_rate_bytes_per_sec,
        node_to_latency_mapping=latency,
        node_to_partition_mapping=_nodes_by_name(gm, node_to_partition or {}),
        partition_to_logical_device_mapping=dict(partition_to_logical_devices or {}),
        saturate_host=saturate_host,
    )
    partitioner = Partitioner()
    try:
        result = partitioner.partition_graph(gm, gm, config)
    except RuntimeError as exc:
        refusal = explain_refusal(gm, devices, str(exc))
        raise PartitionRefused(f"torch's Partitioner ({mode} mode) refused: {refusal['explanation']}",
                               {"refusal": refusal}) from exc

    partitions = partitioner.partitions
    if mode == "aot_based":
        set_parents_and_children(partitions)  # torch leaves them empty in this mode; the DAG and critical path need them
    facts = describe_partitions(partitions, devices, mode)
    facts["graph_node_count"] = len(result.module_with_submodules.graph.nodes)
    facts["transfer_rate_bytes_per_sec"] = transfer_rate_bytes_per_sec
    if latency:
        figures = _latency_facts(gm, partitions, devices, latency, transfer_rate_bytes_per_sec)
        for entry, triple in zip(facts["partitions"], figures.pop("latencies")):
            entry["latency"] = triple
        facts.update(figures)
    if what_if_removed:
        facts["what_if_removed"] = _what_if_removed(partitions, what_if_removed)
    return result.module_with_submodules, facts


def _latency_facts(gm: GraphModule, partitions: list[TorchPartition], devices: Sequence[Any],
                   latency: dict[Node, NodeLatency], rate: float) -> dict[str, Any]:
    """Per-partition (mem, compute, overall) latency and the critical path of torch's partitions,
    with fxflow's cost model: torch's figures (bit for bit on torch's tests), in linear time where
    torch's own helpers walk every path (exponential on residual graphs); and how far that critical
    path can be from the best plan's (`bounds.certificate`: lower_bound, gap, ...)."""
    from fxflow.partitioning.bounds import certificate
    from fxflow.partitioning.cost import ZeroTransferRate, critical_path_latency, partition_latencies
    from fxflow.partitioning.problem import build_problem
    from fxflow.partitioning.split import placement_of

    problem = build_problem(gm, latency, devices, rate)
    placement = placement_of(problem, partitions)
    latencies = partition_latencies(problem, placement)
    facts: dict[str, Any] = {"latencies": [[float(v) for v in lat] for lat in latencies]}
    try:
        facts["critical_path_latency"] = float(critical_path_latency(problem, placement, latencies))
    except ZeroTransferRate as exc:
        facts["critical_path_latency_unavailable"] = str(exc)
        return facts
    # torch leaves a partition on no device when devices run out: memory bounds nothing then
    on_devices = all(placement.devices)
    facts.update(certificate(problem, "latency", facts["critical_path_latency"], partitions_on_devices=on_devices))
    return facts


def _nodes_by_name(gm: GraphModule, by_name: dict[str, int]) -> dict[Node, int]:
    nodes = {n.name: n for n in gm.graph.nodes}
    unknown = sorted(set(by_name) - set(nodes))
    if unknown:
        raise KeyError(f"node_to_partition names nodes that the traced graph lacks: {unknown}; graph nodes: "
                       + ", ".join(n for n, v in nodes.items() if v.op not in NON_COMPUTE_OPS))
    return {nodes[name]: pid for name, pid in by_name.items()}


def _what_if_removed(partitions: list[TorchPartition], names: Sequence[str]) -> dict[str, Any]:
    """Memory a partition would use without each named node (torch's Partition.remove_node), then restore it."""
    out = {}
    for name in names:
        owner = next((p for p in partitions for n in p.nodes if n.name == name), None)
        if owner is None:
            raise KeyError(f"what_if_removed: no partition holds a node named '{name}'")
        node = next(n for n in owner.nodes if n.name == name)
        before = owner.used_mem_bytes
        owner.remove_node(node)
        after = owner.used_mem_bytes
        owner.add_node(node)
        out[name] = {"partition": owner.partition_id, "used_mem_bytes_before": before, "used_mem_bytes_after": after}
    return out


def describe_partitions(partitions: list[TorchPartition], devices: Sequence[Any], mode: str) -> dict[str, Any]:
    """JSON facts about torch's partitions and how they land on the devices."""
    by_logical: dict[int, list[Any]] = {}
    for d in devices:
        by_logical.setdefault(d.logical_id, []).append(d)
    entries = []
    for p in partitions:
        placed = [d.name for lid in p.logical_device_ids for d in by_logical.get(lid, [])[:1]]
        entries.append({
            "id": p.partition_id,
            "nodes": sorted(n.name for n in p.nodes),
            "compute_nodes": sorted(n.name for n in p.nodes if n.op not in NON_COMPUTE_OPS),
            "used_mem_bytes": int(p.used_mem_bytes),
            "logical_device_ids": list(p.logical_device_ids),
            "devices": placed,
            "parents": sorted(q.partition_id for q in p.parents),
            "children": sorted(q.partition_id for q in p.children),
        })
    device_use = {}
    for d in devices:
        hosted = [e["id"] for e in entries if d.logical_id in e["logical_device_ids"] and d.name in e["devices"]]
        used = sum(e["used_mem_bytes"] for e in entries if e["id"] in hosted)
        device_use[d.name] = {"logical_id": d.logical_id, "mem_bytes": d.mem_bytes, "partitions": hosted, "used_bytes": used}
    return {
        "mode": mode,
        "num_partitions": len(entries),
        "partitions": entries,
        "devices": device_use,
        "idle_devices": [name for name, use in device_use.items() if not use["partitions"]],
    }


def explain_refusal(gm: GraphModule, devices: Sequence[Any], reason: str) -> dict[str, Any]:
    """Say in words which node or which budget did not fit, from torch's terse reason."""
    sized = [n for n in gm.graph.nodes if getattr(n, "size_bytes", None) is not None]
    largest = max(sized, key=lambda n: n.size_bytes.total_size, default=None)
    total = sum(n.size_bytes.total_size for n in sized)
    budgets = ", ".join(f"{d.name} {d.mem_bytes} B" for d in devices) or "none"
    biggest = max(devices, key=lambda d: d.mem_bytes, default=None)
    facts: dict[str, Any] = {"reason": reason, "module_bytes": total, "device_budgets": {d.name: d.mem_bytes for d in devices}}
    if largest is not None:
        facts["largest_node"] = {"name": largest.name, "total_bytes": largest.size_bytes.total_size}
    if not devices:
        text = "the device list is empty"
    elif "same memory size" in reason:
        text = f"this mode needs devices of equal memory, but the budgets differ: {budgets}"
    elif largest is not None and biggest is not None and largest.size_bytes.total_size > biggest.mem_bytes:
        text = (f"node '{largest.name}' needs {largest.size_bytes.total_size} B but the largest device "
                f"({biggest.name}) has {biggest.mem_bytes} B")
    elif "enough memory" in reason:
        text = (f"the module needs {total} B in all but the devices offer {budgets} "
                f"({sum(d.mem_bytes for d in devices)} B together)")
    else:
        text = f"device budgets {budgets}; module {total} B"
    facts["explanation"] = f"{text} [torch: {reason}]"
    return facts
