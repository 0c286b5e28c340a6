"""torch's own latency helpers on a partition stage's partitions, beside fxflow's cost model.

torch's test_partition_latency computes each partition's latency with
`get_partition_to_latency_mapping` and the critical path with `get_latency_of_partitioned_graph`.
fxflow's partition facts come from its own cost model (linear time, where torch's helpers walk
every path). With `torch_latency_helpers: true` the partition stage also runs torch's helpers on
the partitions it recorded and says whether both agree, so that a recipe pinning both fails when
either is broken:

    facts["torch_helpers"] = torch_latency_figures(gm, facts, latency_mapping, transfer_rate)
    # {"partitions": [{"id": 0, "latency": [128.0, 80.0, 160.0]}, ...],
    #  "critical_path_latency": 208.0, "agrees": True, "differences": []}

The partitions are rebuilt as torch `Partition` objects from the recorded facts (`nodes`,
`logical_device_ids`, `parents`, `children`) over the sized graph that was partitioned.
"""

from __future__ import annotations

import math
from typing import Any

from torch.fx import GraphModule, Node
from torch.fx.experimental import partitioner_utils as torch_utils
from torch.fx.experimental.partitioner_utils import NodeLatency, Partition


def torch_latency_figures(gm: GraphModule, facts: dict[str, Any], latency: dict[Node, NodeLatency],
                          transfer_rate_bytes_per_sec: float) -> dict[str, Any]:
    """torch's figures for the recorded partitions, and where fxflow's recorded figures differ."""
    partitions = _torch_partitions(gm, facts["partitions"])
    mapping = torch_utils.get_partition_to_latency_mapping(partitions, latency)
    figures: dict[str, Any] = {"partitions": [
        {"id": p.partition_id, "latency": [float(mapping[p].mem_latency_sec), float(mapping[p].computer_latency_sec),
                                           float(mapping[p].overall_latency_sec)]} for p in partitions]}
    if transfer_rate_bytes_per_sec > 0:
        figures["critical_path_latency"] = float(
            torch_utils.get_latency_of_partitioned_graph(partitions, mapping, transfer_rate_bytes_per_sec))
    differences = _differences(facts, figures)
    figures.update(agrees=not differences, differences=differences)
    return figures


def _torch_partitions(gm: GraphModule, entries: list[dict[str, Any]]) -> list[Partition]:
    nodes = {n.name: n for n in gm.graph.nodes}
    by_id: dict[int, Partition] = {}
    for entry in entries:
        partition = Partition(entry["id"])
        partition.nodes = {nodes[name] for name in entry["nodes"]}
        partition.logical_device_ids = list(entry["logical_device_ids"])
        by_id[entry["id"]] = partition
    for entry in entries:
        by_id[entry["id"]].parents = {by_id[i] for i in entry["parents"]}
        by_id[entry["id"]].children = {by_id[i] for i in entry["children"]}
    return [by_id[entry["id"]] for entry in entries]


def _differences(facts: dict[str, Any], torch_figures: dict[str, Any]) -> list[str]:
    """Figure by figure, where fxflow's recorded value is not torch's. Equal means equal to within
    float rounding (REL_TOL): both sum the same node latencies, possibly in another order, so a
    fitted model's fractional seconds may differ in the last bits; a real difference is far larger."""
    found = []
    for ours, theirs in zip(facts["partitions"], torch_figures["partitions"]):
        if not _same(ours.get("latency"), theirs["latency"]):
            found.append(f"partition {ours['id']}: fxflow {ours.get('latency')}, torch {theirs['latency']}")
    if "critical_path_latency" in torch_figures and not _same(facts.get("critical_path_latency"),
                                                              torch_figures["critical_path_latency"]):
        found.append(f"critical path: fxflow {facts.get('critical_path_latency')}, "
                     f"torch {torch_figures['critical_path_latency']}")
    return found


REL_TOL = 1e-9


def _same(ours: Any, theirs: Any) -> bool:
    """Numbers (or equal-length lists of numbers) equal to within REL_TOL; anything else must be equal."""
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and not isinstance(ours, bool):
        return math.isclose(ours, theirs, rel_tol=REL_TOL, abs_tol=0.0)
    return ours == theirs
