"""Fit a `FittedCost` from one distributed run, and predict a placement with it.

    cost = fit_cost(split, measurement, args, calibration={"recipe": ...})   # after dm.measure(...)
    prediction = predict_placement(cost, split, placement, args)             # any model, any placement
    prediction["partitions"][pid], prediction["step_s"]

The per-node coefficients come from timing every node of the run's split module in this process
(one thread, median of `repeats`); the partition scale from the measured partitions against the
sum of their nodes' predictions (what running on a worker adds); the transfer terms from the measured crossings and the
measured request (see `_crossing_terms`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from torch.fx import GraphModule, Interpreter

from fxflow.distributed.compare import measured_critical_path
from fxflow.distributed.plan import SlotAssignment, build_plan
from fxflow.partitioning.fitted_cost import (
    FittedCost,
    NodeFeatures,
    PartitionTerms,
    TransferTerms,
    tensor_bytes,
    fit_coefficients,
    fit_line,
    profile,
    with_fallback,
)


def fit_cost(split: GraphModule, measurement: Mapping[str, Any], args: Sequence[Any], *,
             calibration: Mapping[str, Any] | None = None, repeats: int = 5,
             statistic: Literal["min", "median"] = "min") -> FittedCost:
    """A cost model fitted from `measurement` (DistributedModule.measure on `split`). `statistic`:
    which of the measured figures to fit, the fastest request (the least disturbed by other work
    on the machine: what the hardware does) or the median (what a loaded machine gave)."""
    measurement = _as_statistic(measurement, statistic)
    timed = [f for f in profile(split, args, repeats=repeats) if f.seconds]
    coefficients = with_fallback(fit_coefficients(timed, [f.seconds for f in timed]))
    probe = FittedCost(calibration={}, coefficients=coefficients, partition=PartitionTerms(scale=1.0),
                       transfer=TransferTerms(latency_s=0.0, bytes_per_s=1.0))
    by_partition = _by_partition(timed)
    measured = {p["id"]: p["compute_s"] for p in measurement["partitions"]}
    ids = sorted(set(measured) & set(by_partition))
    modelled = [sum(probe.node_seconds(f) for f in by_partition[i]) for i in ids]
    # the median ratio, not a line: four or so partitions, timed on a shared machine, give one
    # outlier too many for a least-squares slope and intercept
    scale = statistics.median(measured[i] / m for i, m in zip(ids, modelled) if m > 0) if ids else 1.0
    transfer = _crossing_terms(measurement, dict(zip(ids, modelled)), scale)
    node_errors = [abs(probe.node_seconds(f) / f.seconds - 1) for f in timed]
    cost = FittedCost(
        calibration={**(calibration or {}), "statistic": statistic, "nodes": len(timed), "partitions": len(ids),
                     "edges": len(measurement["edges"])},
        coefficients=coefficients,
        partition=PartitionTerms(scale=max(scale, 1e-9)),
        transfer=transfer,
    )
    part_errors = [abs(cost.partition_seconds(by_partition[i]) / measured[i] - 1) for i in ids]
    cost.fit = {"node_median_rel_error": statistics.median(node_errors),
                "partition_median_rel_error": statistics.median(part_errors) if part_errors else None}
    return cost


def _as_statistic(measurement: Mapping[str, Any], statistic: str) -> dict[str, Any]:
    """The measurement with `compute_s` / `end_to_end_s` read as `statistic` (min or median)."""
    if statistic == "median":
        return dict(measurement)
    return {**measurement, "end_to_end_s": measurement["end_to_end_min_s"],
            "partitions": [{**p, "compute_s": p["compute_min_s"]} for p in measurement["partitions"]]}


def _crossing_terms(measurement: Mapping[str, Any], modelled: Mapping[int, float], scale: float) -> TransferTerms:
    """Per byte from the probes (each crossing value sent alone: a non-negative line through their
    sizes); per crossing, what the measured request took beyond its critical path's predicted
    compute and bytes, shared among the crossings on that path. Probes sent alone pay a wake-up
    the request's crossings overlap, so the request is the better judge of the fixed part."""
    probes = [(e["bytes"], e["transfer_s"]) for e in measurement["edges"] if e.get("transfer_s") and e.get("bytes")]
    per_byte = 0.0
    if len({b for b, _ in probes}) >= 2:
        per_byte, _ = fit_line([b for b, _ in probes], [s for _, s in probes])
    compute = {p["id"]: scale * modelled.get(p["id"], 0.0) for p in measurement["partitions"]}
    edges = [{**e, "transfer_s": per_byte * (e.get("bytes") or 0)} for e in measurement["edges"]]
    path = measured_critical_path({**measurement, "partitions": [{"id": i, "compute_s": s} for i, s in compute.items()],
                                   "edges": edges})
    crossed = {(src, dst) for e in measurement["edges"] for src in e["from"] for dst in e["to"]}
    crossings = max(sum((u, v) in crossed for u, v in zip(path["path"], path["path"][1:])), 1)
    latency = max(measurement["end_to_end_s"] - path["seconds"], 0.0) / crossings
    return TransferTerms(latency_s=latency, bytes_per_s=1.0 / per_byte if per_byte > 0 else 1e12)


def _by_partition(features: Sequence[NodeFeatures]) -> dict[int, list[NodeFeatures]]:
    groups: dict[int, list[NodeFeatures]] = {}
    for f in features:
        if f.partition is not None:
            groups.setdefault(f.partition, []).append(f)
    return groups


class _Values(Interpreter):
    """Runs the split module's top-level graph, keeping every value's byte size by node name."""

    def __init__(self, gm: GraphModule):
        super().__init__(gm)
        self.nbytes: dict[str, int] = {}

    def run_node(self, n):  # type: ignore[no-untyped-def]
        result = super().run_node(n)
        self.nbytes[n.name] = tensor_bytes(result)
        return result


def predict_placement(cost: FittedCost, split: GraphModule, placement: SlotAssignment | Mapping[int, Any],
                      args: Sequence[Any]) -> dict[str, Any]:
    """Predicted seconds per partition, per crossing and for one request (the critical path through
    the partition DAG, crossings included), for `split` placed as `placement`."""
    plan = build_plan(split, placement)
    by_partition = _by_partition(profile(split, args))
    values = _Values(split)
    values.run(*args)
    partitions = [{"id": pid, "compute_s": cost.partition_seconds(nodes)} for pid, nodes in sorted(by_partition.items())]
    edges = [{"from": list(e.sources), "to": list(e.consumers), "bytes": values.nbytes.get(e.value, 0),
              "transfer_s": cost.transfer_seconds(values.nbytes.get(e.value, 0))} for e in plan.edges]
    dag = [list(edge) for edge in plan.partition_dag.edges]
    path = measured_critical_path({"partitions": partitions, "edges": edges, "partition_dag": dag})
    return {"partitions": {p["id"]: p["compute_s"] for p in partitions}, "edges": edges,
            "critical_path_s": path["seconds"], "step_s": path["seconds"]}
