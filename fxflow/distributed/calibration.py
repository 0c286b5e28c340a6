"""A latency model calibrated from a distributed run, in the form torch's partitioner consumes.

`calibrated_latency` keeps, per partition, the measured compute seconds and the names of its
compute nodes, and, for transfers, measured bytes per second. `node_latency_mapping` turns that
back into torch's `{Node: NodeLatency}` for `PartitionerConfig.node_to_latency_mapping`: each
partition's nodes get latencies proportional to `weights` (an earlier model's mapping; one unit
per node without it), scaled so that torch's own partition latency (the longest path through
the partition's nodes) equals the measured seconds. Feed `bytes_per_s` as
`transfer_rate_bytes_per_sec`:

    calibration = calibrated_latency(measurement, split)
    mapping = node_latency_mapping(calibration, traced_gm, weights=old_mapping)
    PartitionerConfig(devices, mode=PartitionMode.cost_aware, node_to_latency_mapping=mapping,
                      transfer_rate_bytes_per_sec=calibration["transfer"]["bytes_per_s"])

In a recipe, the execute stage writes the calibration to `calibrated_latency.json` and
`fxflow.partitioning.latency.CalibratedLatency` (conf/latency/calibrated.yaml) feeds it to the
partition stage.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from torch.fx import GraphModule, Node
from torch.fx.experimental.partitioner_utils import NodeLatency, Partition, get_latency_of_one_partition


def calibrated_latency(measurement: Mapping[str, Any], split: GraphModule) -> dict[str, Any]:
    """Measured seconds per partition (with its compute node names) and transfer speed."""
    from fxflow.nodes import compute_nodes  # here: ranks import this package and need none of it

    partitions = []
    for part in measurement["partitions"]:
        submod = split.get_submodule(f"submod_{part['id']}")
        nodes = [n.name for n in compute_nodes(submod)]
        partitions.append({"id": part["id"], "compute_s": part["compute_s"], "nodes": nodes})
    return {"unit": "s", "source": "measured", "partitions": partitions, "transfer": transfer_speed(measurement["edges"])}


def transfer_speed(edges: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Effective bytes/s over the measured crossings (total bytes / total seconds), and where
    sizes vary enough, a least-squares fit seconds = latency_s + bytes / fit_bytes_per_s."""
    points = [(e["bytes"], e["transfer_s"]) for e in edges if e.get("transfer_s") and e.get("bytes") is not None]
    total_bytes = sum(b for b, _ in points)
    total_s = sum(s for _, s in points)
    result: dict[str, Any] = {
        "edges": len(points),
        "bytes_per_s": total_bytes / total_s if total_bytes and total_s else None,
        "fit_bytes_per_s": None,
        "fit_latency_s": None,
    }
    sizes = {b for b, _ in points}
    if len(sizes) >= 2:
        slope, intercept = statistics.linear_regression([float(b) for b, _ in points], [s for _, s in points])
        if slope > 0:
            result["fit_bytes_per_s"] = 1.0 / slope
            result["fit_latency_s"] = max(float(intercept), 0.0)
    return result


def node_latency_mapping(calibration: Mapping[str, Any], gm: GraphModule,
                         weights: Mapping[Node, NodeLatency] | None = None) -> dict[Node, NodeLatency]:
    """torch's node -> NodeLatency over `gm` (matched by node name), reproducing each measured
    partition's seconds under torch's partition latency. Nodes no partition names get zero."""
    from fxflow.nodes import NON_COMPUTE_OPS

    by_name = {n.name: n for n in gm.graph.nodes}
    mapping = {n: NodeLatency(0.0, 0.0) for n in gm.graph.nodes if n.op not in NON_COMPUTE_OPS}
    for part in calibration["partitions"]:
        nodes = [by_name[name] for name in part["nodes"] if name in by_name]
        if not nodes:
            continue
        base = {n: (weights[n] if weights and n in weights else NodeLatency(0.0, 1.0)) for n in nodes}
        holder = Partition(part["id"])
        holder.nodes = set(nodes)
        modelled = get_latency_of_one_partition(holder, base).overall_latency_sec
        factor = part["compute_s"] / modelled if modelled else 0.0
        for n, lat in base.items():
            mapping[n] = NodeLatency(lat.mem_latency_sec * factor, lat.computer_latency_sec * factor)
    return mapping
