"""Latency of a placement, with torch's cost model, in linear time.

torch's `get_partition_to_latency_mapping` and `get_latency_of_partitioned_graph`
(torch/fx/experimental/partitioner_utils.py) walk every path recursively, which is
exponential on branchy graphs and overflows the stack on long chains. The same figures
come out of one forward pass in topological order, because each is a longest path:

* a partition's latency is its longest path of nodes, a node adding max(compute, mem)
  latency to `overall` and its mem / compute latencies to the other two fields;
* a placement's critical path is the longest path of partitions, a partition adding its
  `overall`, an edge adding the bytes torch charges for it over the transfer rate (nothing
  between partitions on the same logical devices).

Sums are formed in the order torch forms them (from the top of the path down), so the
figures are bit-identical. Where several paths tie for the longest, torch's mem / compute
split depends on set iteration order; we take the first in graph order.

With a transfer rate of 0, torch divides by zero as soon as two partitions on different
devices exchange data, and so does `critical_path_latency` (`ZeroTransferRate`). The
search objectives (`objective_value`) instead treat a rate of 0 as free transfers.

    latencies = partition_latencies(problem, placement)   # [PartitionLatency per partition]
    critical_path_latency(problem, placement)             # torch's get_latency_of_partitioned_graph
    bottleneck_latency(problem, placement)                # slowest stage, for pipelined throughput
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from fxflow.partitioning.errors import InvalidPlacement
from fxflow.partitioning.placement import PartitionGraph, Placement, partition_graph, topological_partitions
from fxflow.partitioning.problem import Problem

Objective = Literal["latency", "throughput"]  # the one table of objectives
OBJECTIVES: tuple[str, ...] = get_args(Objective)


class PartitionLatency(NamedTuple):
    """Same fields as torch's `PartitionLatency` (and equal to it as a tuple)."""

    mem_latency_sec: float
    computer_latency_sec: float
    overall_latency_sec: float


class ZeroTransferRate(ZeroDivisionError):
    """torch's critical path is undefined: transfer rate 0 between partitions on different devices."""


def partition_latencies(problem: Problem, placement: Placement) -> list[PartitionLatency]:
    """torch's `get_partition_to_latency_mapping`, as a list indexed by partition id."""
    part = placement.partition_of
    mem, comp = problem.mem_latency, problem.compute_latency
    best: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * problem.num_nodes  # (overall, mem, compute)
    result = [(0.0, 0.0, 0.0)] * placement.num_partitions
    for v in range(problem.num_nodes):
        p = part[v]
        prev = (0.0, 0.0, 0.0)
        found = False
        for u in problem.inputs[v]:
            if part[u] == p and (not found or best[u][0] > prev[0]):
                prev, found = best[u], True
        m, c = mem[v], comp[v]
        cur = (prev[0] + max(c, m), prev[1] + m, prev[2] + c)
        best[v] = cur
        if cur[0] > result[p][0]:
            result[p] = cur
    return [PartitionLatency(m, c, o) for o, m, c in result]


def same_devices(problem: Problem, placement: Placement, q: int, p: int) -> bool:
    """torch's rule for free transfers: both partitions on the same, non-empty logical device list."""
    a, b = placement.logical_device_ids(problem, q), placement.logical_device_ids(problem, p)
    return bool(a) and a == b


def comm_latency(problem: Problem, placement: Placement, graph: PartitionGraph, q: int, p: int) -> float:
    """torch's `get_comm_latency_between(parent q, child p)`."""
    if same_devices(problem, placement, q, p):
        return 0.0
    if problem.transfer_rate_bytes_per_sec == 0:
        raise ZeroTransferRate(
            f"transfer rate is 0 but partitions {q} -> {p} are on different devices "
            f"({placement.logical_device_ids(problem, q)} -> {placement.logical_device_ids(problem, p)}); "
            "torch's critical path divides by zero here"
        )
    return graph.comm_bytes[q, p] / problem.transfer_rate_bytes_per_sec


def critical_path_latency(
    problem: Problem,
    placement: Placement,
    latencies: list[PartitionLatency] | None = None,
    graph: PartitionGraph | None = None,
    *,
    free_transfers_at_rate_zero: bool = False,
) -> float:
    """torch's `get_latency_of_partitioned_graph`: the longest path of partitions plus transfers."""
    latencies = partition_latencies(problem, placement) if latencies is None else latencies
    graph = partition_graph(problem, placement) if graph is None else graph
    order = topological_partitions(graph, _first_nodes(placement))
    if order is None:
        raise InvalidPlacement("the partitions depend on each other in a cycle: no critical path")
    free = free_transfers_at_rate_zero and problem.transfer_rate_bytes_per_sec == 0
    finish = [0.0] * placement.num_partitions
    critical = 0.0
    for p in order:
        start = 0.0
        first = True
        for q in graph.parents[p]:
            t = finish[q] + (0.0 if free else comm_latency(problem, placement, graph, q, p))
            if first or t > start:
                start, first = t, False
        finish[p] = start + latencies[p].overall_latency_sec
        if not graph.children[p] and finish[p] > critical:
            critical = finish[p]
    return critical


def inbound_bytes(problem: Problem, placement: Placement, *, with_aux: bool) -> list[int]:
    """Bytes each partition receives: distinct outputs of nodes in partitions on other devices that it
    reads, plus (`with_aux`) the aux nodes it shares with partitions earlier in id order (torch charges
    shared aux nodes on every partition edge; counted once here)."""
    part = placement.partition_of
    k = placement.num_partitions
    inbound = [0] * k
    for u, users in enumerate(problem.users):
        q = part[u]
        for p in {part[v] for v in users} - {q}:
            if not same_devices(problem, placement, q, p):
                inbound[p] += problem.output_bytes[u]
    if with_aux:
        for a, users in enumerate(problem.aux_users):
            holders = sorted({part[v] for v in users})
            for i, p in enumerate(holders):
                if any(not same_devices(problem, placement, q, p) for q in holders[:i]):
                    inbound[p] += problem.aux_bytes[a]
    return inbound


def bottleneck_latency(problem: Problem, placement: Placement, latencies: list[PartitionLatency] | None = None) -> float:
    """The slowest stage when requests stream through the partitions: a partition's latency plus
    the time to receive its inputs (a rate of 0 makes transfers free)."""
    latencies = partition_latencies(problem, placement) if latencies is None else latencies
    inbound = inbound_bytes(problem, placement, with_aux=False)
    return max((lat.overall_latency_sec + _transfer(problem, b) for lat, b in zip(latencies, inbound)), default=0.0)


def pipeline_latency(problem: Problem, placement: Placement, latencies: list[PartitionLatency] | None = None) -> float:
    """One request through the partitions run one after another in id order: the sum of partition
    latencies and inbound transfers. An upper bound on `critical_path_latency` when ids are in
    topological order (see `canonical`), equal to it when the partitions form a chain."""
    latencies = partition_latencies(problem, placement) if latencies is None else latencies
    inbound = inbound_bytes(problem, placement, with_aux=True)
    total = 0.0
    for lat, b in zip(latencies, inbound):
        total += lat.overall_latency_sec + _transfer(problem, b)
    return total


def objective_value(problem: Problem, placement: Placement, objective: Objective) -> float:
    """What the algorithms minimise: torch's critical path ("latency", transfers free at rate 0) or
    the bottleneck stage ("throughput")."""
    if objective == "latency":
        return critical_path_latency(problem, placement, free_transfers_at_rate_zero=True)
    if objective == "throughput":
        return bottleneck_latency(problem, placement)
    raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")


def _transfer(problem: Problem, nbytes: int) -> float:
    rate = problem.transfer_rate_bytes_per_sec
    return nbytes / rate if rate > 0 else 0.0


def _first_nodes(placement: Placement) -> list[int]:
    first = [0] * placement.num_partitions
    seen = [False] * placement.num_partitions
    for v, p in enumerate(placement.partition_of):
        if not seen[p]:
            first[p], seen[p] = v, True
    return first
