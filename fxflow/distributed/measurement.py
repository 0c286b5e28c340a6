"""Turn the ranks' raw timings into the JSON-able measurement record of a distributed run, and
join several such records of one plan (`merged`)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fxflow.distributed.executor import DistributedModule


def summarize(dm: "DistributedModule", requests: dict[int, Any] | None, probe: dict[int, list[float]],
              pipeline: dict[str, Any] | None, warmup: int) -> dict[str, Any]:
    """The record: where everything ran, start-up, and (given request replies) the figures."""
    plan = dm.plan
    described = plan.describe()
    record: dict[str, Any] = {
        "backend": dm.backend,
        "world_size": plan.world_size,
        "ranks": [dict(r, pid=pid) for r, pid in zip(described["ranks"], dm.cluster.pids)],
        "placement": dm.placement.to_json(),
        "partition_dag": described["partition_dag"],
        "chain": described["chain"],
        "startup": dm.startup,
    }
    if requests is None:
        return record
    latencies = requests[0]["latency_s"][warmup:]
    record["repeats"] = len(latencies)
    record["warmup"] = warmup
    record["partitions"] = []
    for step in plan.steps:
        if step.partition is None:
            continue
        samples = [r["compute_s"][step.name] for r in requests[step.home]["requests"][warmup:]]
        record["partitions"].append({
            "id": step.partition,
            "rank": step.home,
            "device": plan.devices[step.home],
            "device_name": plan.device_names.get(step.home),
            "compute_s": statistics.median(samples),
            "compute_min_s": min(samples),
            "compute_samples_s": samples,
        })
    record["partitions"].sort(key=lambda p: p["id"])
    record["edges"] = []
    for i, edge in enumerate(plan.edges):
        received = [r for r in requests[edge.dst_rank]["requests"][-1]["recv"] if r[0] == edge.src_rank and r[1] == edge.value]
        payload, header = (received[0][2], received[0][3]) if received else (None, None)
        transfer = statistics.median(probe[i]) if probe.get(i) else None
        record["edges"].append({
            "value": edge.value,
            "src_rank": edge.src_rank,
            "dst_rank": edge.dst_rank,
            "from": list(edge.sources),
            "to": list(edge.consumers),
            "bytes": payload,
            "header_bytes": header,
            "transfer_s": transfer,
            "transfer_min_s": min(probe[i]) if probe.get(i) else None,
            "bytes_per_s": payload / transfer if transfer and payload else None,
        })
    record["end_to_end_s"] = statistics.median(latencies)
    record["end_to_end_min_s"] = min(latencies)
    record["end_to_end_samples_s"] = latencies
    record["pipeline"] = pipeline
    return record


def merged(measurements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Measurements of one plan, each from freshly started ranks, as one: every partition's and
    request's samples joined in order (request r of the joined lists is still one request) and
    each figure recomputed over them; a crossing keeps the median of the probes' medians and the
    fastest probe. A worker's speed differs from one start to the next (on two cores, the fastest
    request of a fresh start varied by 10%), so a fit read from several starts is less lucky or
    unlucky than one read from a single start."""
    if not measurements:
        raise ValueError("no measurements to merge")
    first = dict(measurements[0])
    for other in measurements[1:]:
        if [p["id"] for p in other["partitions"]] != [p["id"] for p in first["partitions"]] or \
                [e["value"] for e in other["edges"]] != [e["value"] for e in first["edges"]]:
            raise ValueError("the measurements are of different plans: their partitions or crossings differ")
    partitions = []
    for i, part in enumerate(first["partitions"]):
        samples = [s for m in measurements for s in m["partitions"][i]["compute_samples_s"]]
        partitions.append({**part, "compute_s": statistics.median(samples), "compute_min_s": min(samples),
                           "compute_samples_s": samples})
    edges = []
    for i, edge in enumerate(first["edges"]):
        medians = [m["edges"][i]["transfer_s"] for m in measurements if m["edges"][i]["transfer_s"] is not None]
        fastest = [m["edges"][i]["transfer_min_s"] for m in measurements if m["edges"][i].get("transfer_min_s") is not None]
        transfer = statistics.median(medians) if medians else None
        edges.append({**edge, "transfer_s": transfer, "transfer_min_s": min(fastest) if fastest else None,
                      "bytes_per_s": edge["bytes"] / transfer if transfer and edge.get("bytes") else None})
    latencies = [s for m in measurements for s in m["end_to_end_samples_s"]]
    first.update(partitions=partitions, edges=edges, repeats=len(latencies), starts=len(measurements),
                 end_to_end_s=statistics.median(latencies), end_to_end_min_s=min(latencies),
                 end_to_end_samples_s=latencies)
    return first
