"""A distributed run's measurement beside the latency model's prediction.

The Partition transform's facts give, per partition, torch's latency triple
`[mem, compute, overall]` and a `critical_path_latency`, in the latency model's units (seconds
for `MeasuredLatency`, bytes-as-seconds for the torch test's size rules). The measurement gives
seconds. `compare_with_prediction` puts them side by side; where the units differ, the ratio
to the *scaled* prediction (one seconds-per-unit factor over all partitions) still shows
whether the model ranks and weighs the partitions right.

    measurement = dm.measure(inputs)
    table = compare_with_prediction(measurement, facts)
    table["partitions"][0]["ratio"], table["critical_path"]["measured_end_to_end_s"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx


def compare_with_prediction(measurement: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """Per partition: measured seconds, predicted overall latency, measured/predicted; and the
    critical path: predicted, measured end to end, and measured along the partition DAG."""
    predicted = {int(e["id"]): e.get("latency") for e in facts.get("partitions", [])}
    rows = []
    for part in measurement["partitions"]:
        triple = predicted.get(part["id"])
        overall = float(triple[2]) if triple else None
        rows.append({
            "id": part["id"],
            "rank": part["rank"],
            "device_name": part.get("device_name"),
            "measured_s": part["compute_s"],
            "predicted": overall,
            "predicted_mem": float(triple[0]) if triple else None,
            "predicted_compute": float(triple[1]) if triple else None,
            "ratio": part["compute_s"] / overall if overall else None,
        })
    known = [r for r in rows if r["predicted"]]
    scale = sum(r["measured_s"] for r in known) / sum(r["predicted"] for r in known) if known else None
    for row in rows:
        row["ratio_to_scaled"] = row["measured_s"] / (scale * row["predicted"]) if scale and row["predicted"] else None
    dag = measured_critical_path(measurement)
    predicted_path = facts.get("critical_path_latency")
    end_to_end = measurement["end_to_end_s"]
    return {
        "partitions": rows,
        "seconds_per_predicted_unit": scale,
        "critical_path": {
            "predicted": predicted_path,
            "measured_end_to_end_s": end_to_end,
            "ratio": end_to_end / predicted_path if predicted_path else None,
            "measured_dag_s": dag["seconds"],
            "measured_path": dag["path"],
            "overhead_s": end_to_end - dag["seconds"],
        },
    }


def measured_critical_path(measurement: Mapping[str, Any]) -> dict[str, Any]:
    """Longest path through the partition DAG with measured compute per partition and measured
    transfer per crossing (input -> ... -> output); what a perfect executor would take."""
    compute = {p["id"]: p["compute_s"] for p in measurement["partitions"]}
    transfer: dict[tuple[Any, Any], float] = {}
    for edge in measurement["edges"]:
        for src in edge["from"]:
            for dst in edge["to"]:
                transfer[src, dst] = transfer.get((src, dst), 0.0) + (edge["transfer_s"] or 0.0)
    graph = nx.DiGraph()
    start = ("start",)
    for u, v in measurement["partition_dag"]:
        graph.add_edge(u, v, seconds=transfer.get((u, v), 0.0) + compute.get(v, 0.0))
    for node in list(graph.nodes):
        if graph.in_degree(node) == 0:
            graph.add_edge(start, node, seconds=compute.get(node, 0.0))
    if graph.number_of_nodes() == 0:
        return {"seconds": 0.0, "path": []}
    path = nx.dag_longest_path(graph, weight="seconds")
    seconds = sum(graph.edges[u, v]["seconds"] for u, v in zip(path, path[1:]))
    return {"seconds": seconds, "path": [n for n in path if n != start]}
