"""Fit a `FittedCost` from one distributed run, and predict a placement with it.

    cost = fit_cost(split, measurement, args, calibration={"recipe": ...})   # after dm.measure(...)
    prediction = predict_placement(cost, split, placement, args)             # any model, any placement
    prediction["partitions"][pid], prediction["step_s"]

The per-node coefficients come from timing every node of the run's split module in this process
(one thread, the fastest of its calls over several passes, a node's parameters cold as a
worker's are between requests), at the run's batch and at `batch_scales` times it: a GEMM's
seconds per FLOP fall as it grows, and one batch size cannot tell the FLOP term from the
parameter-bytes term. The partition terms (scale, overhead) are a non-negative line through the
measured partitions against the sum of their nodes' predictions (what running on a worker adds);
the transfer terms come from the measured crossings and the measured request (see
`_crossing_terms`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch.fx import GraphModule

from fxflow.distributed.compare import measured_critical_path
from fxflow.distributed.plan import SlotAssignment, build_plan
from fxflow.partitioning.fitted_cost import (
    FittedCost,
    NodeFeatures,
    PartitionTerms,
    TransferTerms,
    fit_coefficients,
    fit_line,
    profile,
    with_fallback,
)


def fit_cost(split: GraphModule, measurement: Mapping[str, Any], args: Sequence[Any], *,
             calibration: Mapping[str, Any] | None = None, repeats: int = 2, passes: int = 3,
             statistic: Literal["min", "median"] = "min", batch_scales: Sequence[float] = (0.25, 4.0)) -> FittedCost:
    """A cost model fitted from `measurement` (DistributedModule.measure on `split`). `statistic`:
    which of the measured figures to fit, the fastest request (the least disturbed by other work
    on the machine: what the hardware does) or the median (what a loaded machine gave).
    `batch_scales`: the nodes are also timed with the inputs' first dimension scaled by each;
    each node's time is its fastest of `repeats` calls in each of `passes` passes (see `fastest_of_passes`)."""
    measurement = _as_statistic(measurement, statistic)
    timed, *scaled = fastest_of_passes(split, args, [1.0, *batch_scales], repeats, passes)
    timed = [f for f in timed if f.seconds]
    others = [f for features in scaled for f in features if f.seconds]
    coefficients = with_fallback(fit_coefficients(timed + others, [f.seconds for f in timed + others]))
    probe = FittedCost(calibration={}, coefficients=coefficients, partition=PartitionTerms(scale=1.0),
                       transfer=TransferTerms(latency_s=0.0, bytes_per_s=1.0))
    by_partition = _by_partition(timed)
    measured = {p["id"]: p["compute_s"] for p in measurement["partitions"]}
    ids = sorted(set(measured) & set(by_partition))
    modelled = [sum(probe.node_seconds(f) for f in by_partition[i]) for i in ids]
    scale, overhead = fit_line(modelled, [measured[i] for i in ids]) if ids else (1.0, 0.0)
    partition = PartitionTerms(scale=max(scale, 1e-9), overhead_s=overhead)
    transfer = _crossing_terms(measurement, {i: scale * m + overhead for i, m in zip(ids, modelled)}, statistic)
    node_errors = [abs(probe.node_seconds(f) / f.seconds - 1) for f in timed + others]
    cost = FittedCost(
        calibration={**(calibration or {}), "statistic": statistic, "nodes": len(timed), "partitions": len(ids),
                     "edges": len(measurement["edges"]), "batch_scales": [1.0, *batch_scales], "passes": passes,
                     "timed_nodes": len(timed) + len(others)},
        coefficients=coefficients,
        partition=partition,
        transfer=transfer,
    )
    part_errors = [abs(cost.partition_seconds(by_partition[i]) / measured[i] - 1) for i in ids]
    cost.fit = {"node_median_rel_error": statistics.median(node_errors),
                "partition_median_rel_error": statistics.median(part_errors) if part_errors else None}
    return cost


def _as_statistic(measurement: Mapping[str, Any], statistic: str) -> dict[str, Any]:
    """The measurement with `compute_s` / `end_to_end_s` / a probe's `transfer_s` read as
    `statistic` (min or median)."""
    if statistic == "median":
        return dict(measurement)
    return {**measurement, "end_to_end_s": measurement["end_to_end_min_s"],
            "partitions": [{**p, "compute_s": p["compute_min_s"]} for p in measurement["partitions"]],
            "edges": [{**e, "transfer_s": e.get("transfer_min_s", e["transfer_s"])} for e in measurement["edges"]]}


def fastest_of_passes(split: GraphModule, args: Sequence[Any], scales: Sequence[float], repeats: int,
                      passes: int) -> list[list[NodeFeatures]]:
    """Per batch scale, every node's features and its fastest time over `passes` passes, each pass
    timing every scale in turn (`repeats` calls a node): a burst of other work on the machine, which
    only ever adds time, then spoils one pass of a node rather than all of its calls."""
    runs: list[list[list[NodeFeatures]]] = [[] for _ in scales]
    for _ in range(max(passes, 1)):
        for k, factor in enumerate(scales):
            runs[k].append(profile(split, args, repeats=repeats, cold=True) if factor == 1.0
                           else _profile_scaled(split, args, factor, repeats))
    merged = []
    for per_pass in runs:
        first = per_pass[0]
        for i, feature in enumerate(first):
            times = [run[i].seconds for run in per_pass if run[i].name == feature.name and run[i].seconds]
            feature.seconds = min(times) if times else None
        merged.append(first)
    return merged


class ScaledBatchFailed(ValueError):
    """The model does not run with its inputs' first dimension scaled."""


def _profile_scaled(split: GraphModule, args: Sequence[Any], factor: float, repeats: int) -> list[NodeFeatures]:
    """The nodes timed at `factor` times the batch; a model that cannot run it says by what factor."""
    try:
        return profile(split, scale_batch(args, factor), repeats=repeats, cold=True)
    except Exception as exc:  # any error of the model's own code at that batch size
        raise ScaledBatchFailed(f"the model fails with its inputs' first dimension scaled by {factor:g} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc


def scale_batch(args: Sequence[Any], factor: float) -> list[Any]:
    """`args` with every tensor's first dimension scaled by `factor` (rows repeated, or the first
    rows kept; at least one); other values as they are."""
    def scaled(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        rows = max(1, round(value.shape[0] * factor))
        times = -(-rows // value.shape[0])
        return value.repeat(times, *([1] * (value.dim() - 1)))[:rows].clone()
    return [scaled(a) for a in args]


def _crossing_terms(measurement: Mapping[str, Any], modelled: Mapping[int, float],
                    statistic: str = "min") -> TransferTerms:
    """Per byte from the probes (each crossing value sent alone: a non-negative line through their
    sizes); per crossing, what a request took beyond its critical path's compute and bytes, shared
    among the crossings on that path. Probes sent alone pay a wake-up the request's crossings
    overlap, so the request is the better judge of the fixed part. Where the measurement has each
    request's partition times, each request's own compute is taken off its own latency and the
    fastest (or median, with `statistic`) of those remainders kept: a request slowed by other work
    is slowed in its compute too, and that is not the link's. Otherwise the path's `modelled`
    compute is taken off the measured request."""
    probes = [(e["bytes"], e["transfer_s"]) for e in measurement["edges"] if e.get("transfer_s") and e.get("bytes")]
    per_byte = 0.0
    if len({b for b, _ in probes}) >= 2:
        per_byte, _ = fit_line([b for b, _ in probes], [s for _, s in probes])
    compute = {p["id"]: modelled.get(p["id"], 0.0) for p in measurement["partitions"]}
    edges = [{**e, "transfer_s": per_byte * (e.get("bytes") or 0)} for e in measurement["edges"]]
    path = measured_critical_path({**measurement, "partitions": [{"id": i, "compute_s": s} for i, s in compute.items()],
                                   "edges": edges})
    crossed = {(src, dst) for e in measurement["edges"] for src in e["from"] for dst in e["to"]}
    crossings = max(sum((u, v) in crossed for u, v in zip(path["path"], path["path"][1:])), 1)
    samples = {p["id"]: p.get("compute_samples_s") for p in measurement["partitions"]}
    requests = measurement.get("end_to_end_samples_s") or []
    on_path = [n for n in path["path"] if n in samples]
    if requests and all(samples[n] and len(samples[n]) == len(requests) for n in on_path):
        path_bytes_s = path["seconds"] - sum(compute[n] for n in on_path)
        remainders = [total - sum(samples[n][r] for n in on_path) - path_bytes_s for r, total in enumerate(requests)]
        remainder = min(remainders) if statistic == "min" else statistics.median(remainders)
    else:
        remainder = measurement["end_to_end_s"] - path["seconds"]
    return TransferTerms(latency_s=max(remainder, 0.0) / crossings, bytes_per_s=1.0 / per_byte if per_byte > 0 else 1e12)


def _by_partition(features: Sequence[NodeFeatures]) -> dict[int, list[NodeFeatures]]:
    groups: dict[int, list[NodeFeatures]] = {}
    for f in features:
        if f.partition is not None:
            groups.setdefault(f.partition, []).append(f)
    return groups


def predict_placement(cost: FittedCost, split: GraphModule, placement: SlotAssignment | Mapping[int, Any],
                      args: Sequence[Any]) -> dict[str, Any]:
    """Predicted seconds per partition, per crossing and for one request (the critical path through
    the partition DAG, crossings included), for `split` placed as `placement`. Values crossing
    between the same partitions pay one latency between them."""
    plan = build_plan(split, placement)
    value_bytes: dict[str, int] = {}
    by_partition = _by_partition(profile(split, args, value_bytes=value_bytes))
    partitions = [{"id": pid, "compute_s": cost.partition_seconds(nodes)} for pid, nodes in sorted(by_partition.items())]
    edges, crossed = [], set()
    for e in plan.edges:
        # values that cross between the same partitions travel together: the crossing's latency
        # (the receiver waking up) is paid once, their bytes one after another
        nbytes = value_bytes.get(e.value, 0)
        first = (e.sources, e.consumers, e.src_rank, e.dst_rank) not in crossed
        crossed.add((e.sources, e.consumers, e.src_rank, e.dst_rank))
        seconds = cost.transfer_seconds(nbytes) if first else nbytes / cost.transfer.bytes_per_s
        edges.append({"from": list(e.sources), "to": list(e.consumers), "bytes": nbytes, "transfer_s": seconds})
    dag = [list(edge) for edge in plan.partition_dag.edges]
    path = measured_critical_path({"partitions": partitions, "edges": edges, "partition_dag": dag})
    return {"partitions": {p["id"]: p["compute_s"] for p in partitions}, "edges": edges,
            "critical_path_s": path["seconds"], "step_s": path["seconds"]}
