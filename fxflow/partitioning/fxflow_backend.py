"""fxflow's own partitioner as a partition backend, with the same inputs and facts as torch's.

`partition_with_fxflow` takes what `partition_with_torch` takes (the sized graph, the device
list, a latency mapping, the transfer rate) plus the algorithm and objective, and returns the
same shape of result: a split module with one `submod_<id>` child per partition, and facts with
the keys of torch's backend (so the partition report, the picture and the execute stage work
unchanged) plus `algorithm`, `objective`, `objective_value`, `optimal`, `solve_seconds` and the
certificate of `bounds.certificate`: `lower_bound` (no plan's objective is lower), `gap`
((objective_value - lower_bound) / objective_value), `lower_bound_kind` (which bound was
tightest), `lower_bound_candidates` and `bound_seconds`, when a latency mapping is given.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from torch.fx import GraphModule, Node
from torch.fx.experimental.partitioner_utils import NodeLatency

from fxflow.partitioning.algorithms import partition
from fxflow.partitioning.bounds import certificate
from fxflow.partitioning.errors import PlacementRefused
from fxflow.partitioning.problem import build_problem
from fxflow.partitioning.split import describe, split_graph
from fxflow.partitioning.torch_backend import PartitionRefused

def partition_with_fxflow(
    gm: GraphModule,
    devices: Sequence[Any],
    algorithm: str = "best",
    objective: str = "latency",
    *,
    transfer_rate_bytes_per_sec: float = 0.0,
    latency: dict[Node, NodeLatency] | None = None,
    time_limit_s: float = 2.0,
) -> tuple[GraphModule, dict[str, Any]]:
    """Partition `gm` (nodes already sized) over `devices` with fxflow's `algorithm`."""
    started = time.perf_counter()
    problem = build_problem(gm, latency or None, devices, transfer_rate_bytes_per_sec)
    params: dict[str, Any] = {} if algorithm == "pipeline" else {"time_limit_s": time_limit_s}
    try:
        result = partition(problem, algorithm, objective=objective, **params)
    except PlacementRefused as exc:
        raise PartitionRefused(f"fxflow's partitioner ({algorithm}) refused: {exc}", {"refusal": exc.facts()}) from exc
    split = split_graph(gm, problem, result.placement)
    facts = describe(problem, result.placement, mode=f"fxflow {algorithm}", with_latency=bool(latency))
    facts.update({
        "graph_node_count": len(split.graph.nodes),
        "transfer_rate_bytes_per_sec": transfer_rate_bytes_per_sec,
        "algorithm": algorithm,
        "objective": objective,
        "objective_value": float(result.value),
        "optimal": result.optimal,
        "solve_seconds": round(time.perf_counter() - started, 6),
    })
    if latency:  # without latencies every plan scores 0: nothing to certify
        facts.update(certificate(problem, objective, float(result.value)))
    return split, facts
