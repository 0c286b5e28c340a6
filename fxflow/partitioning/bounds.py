"""Lower bounds on the objective of every plan, and the gap they prove for the plan chosen.

A plan's objective (torch's critical path, or the slowest stage) says how good it is; a lower
bound says how good any plan could be, so `(objective - bound) / objective` is a proven ceiling
on how much better the best plan is. The bound holds over every plan torch's cost model prices
in which each partition runs on a device: any number of partitions, several on one device if
its memory (the sum of its partitions) allows, partitions acyclic. That is wider than what the
MILP searches (one partition per device), so it also certifies torch's partitions and plans cut
into pieces (`split_components`).

    bound = lower_bound(problem, "latency")       # Bound(value, kind, candidates, seconds)
    facts = certificate(problem, "latency", objective_value)   # lower_bound, gap, lower_bound_kind, ...

Bounds for "latency" (the largest is kept and named in `kind`):

* `critical_path`: the heaviest path of node weights. A path of nodes runs through a chain of
  partitions (it cannot leave a partition and come back: that would be a cycle), and each of
  them adds its latency, at least the weight of the path's nodes inside it.
* `path_transfers`: a heavy path once more (the heaviest, and the one holding the most bytes),
  plus the transfers memory forces onto it. Where the path moves between devices it pays the
  producer's output bytes over the rate; the nodes it keeps on one device (a run, possibly over
  several partitions there) must fit that device, with the buffer for the data coming in. The
  cheapest way to cut the path into runs that fit the largest device is a dynamic program along
  the path (a heap of the cuts still in reach), linear in its length up to a log factor.

Bound for "throughput": the heaviest node (every stage's latency is at least its heaviest node's).

Not used: the LP relaxation of `algorithms.milp`. Its model covers plans with one partition per
device only (several pieces on one device can be strictly better under torch's cost model, so it
bounds nothing wider), and its big-M rows relax to the heaviest path, which the model already
imposes on its objective: the relaxation gives `critical_path` at best, at MILP cost.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

from fxflow.partitioning.problem import Problem

LATENCY_BOUNDS = ("critical_path", "path_transfers")
THROUGHPUT_BOUNDS = ("heaviest_node",)


@dataclass(frozen=True)
class Bound:
    """The tightest lower bound (`value`, named `kind`), every bound computed (`candidates`) and the
    seconds it took."""

    value: float
    kind: str
    candidates: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def lower_bound(problem: Problem, objective: str = "latency", *, partitions_on_devices: bool = True) -> Bound:
    """The best lower bound on `objective` over every plan of `problem`.

    `partitions_on_devices=False` widens the plans to those with partitions on no device (torch's
    Partitioner leaves some so when devices run out): memory then forces nothing, and only
    `critical_path` holds."""
    started = time.perf_counter()
    if objective == "latency":
        candidates = {"critical_path": heaviest_path(problem)[0]}
        if partitions_on_devices:
            candidates["path_transfers"] = path_transfer_bound(problem)
    elif objective == "throughput":
        candidates = {"heaviest_node": max(problem.weights, default=0.0)}
    else:
        raise ValueError(f"objective must be 'latency' or 'throughput', not {objective!r}")
    kind = max(candidates, key=lambda name: (candidates[name], -list(candidates).index(name)))
    return Bound(float(candidates[kind]), kind, candidates, time.perf_counter() - started)


def gap(value: float, bound: float) -> float:
    """(value - bound) / value: how much lower the best plan's objective can be, as a share of this
    plan's (0 when both are 0)."""
    if value <= 0:
        return 0.0
    return max(0.0, (value - bound) / value)


def certificate(problem: Problem, objective: str, value: float, *, partitions_on_devices: bool = True) -> dict[str, Any]:
    """The facts a partition stage records about how far its plan (objective `value`) can be from the best."""
    bound = lower_bound(problem, objective, partitions_on_devices=partitions_on_devices)
    return {
        "lower_bound": bound.value,
        "gap": gap(value, bound.value),
        "lower_bound_kind": bound.kind,
        "lower_bound_candidates": dict(bound.candidates),
        "bound_seconds": round(bound.seconds, 6),
    }


def heaviest_path(problem: Problem, key: str = "weight") -> tuple[float, list[int]]:
    """The path of nodes with the largest total weight (`key="weight"`, ties to more bytes) or the
    most bytes (`key="bytes"`, ties to more weight): its weight and its nodes in order."""
    w, size = problem.weights, problem.size_bytes
    first, second = (w, size) if key == "weight" else (size, w)
    best: list[tuple[float, float]] = [(0.0, 0.0)] * problem.num_nodes
    came_from = [-1] * problem.num_nodes
    for v, preds in enumerate(problem.inputs):
        top, pick = (0.0, 0.0), -1
        for u in preds:
            if best[u] > top:
                top, pick = best[u], u
        best[v] = (top[0] + first[v], top[1] + second[v])
        came_from[v] = pick
    if not problem.num_nodes:
        return 0.0, []
    v = max(range(problem.num_nodes), key=best.__getitem__)
    path = []
    while v >= 0:
        path.append(v)
        v = came_from[v]
    path.reverse()
    return float(sum(w[u] for u in path)), path


def path_transfer_bound(problem: Problem) -> float:
    """max over the heaviest and the bulkiest path of (its weight + the cheapest transfers memory
    forces onto it); the heaviest path's weight when nothing is forced or nothing fits."""
    weight, heaviest = heaviest_path(problem, "weight")
    best = weight
    _, bulkiest = heaviest_path(problem, "bytes")
    for path in (heaviest, bulkiest):
        forced = forced_transfer_seconds(problem, path)
        if forced is not None:
            best = max(best, sum(problem.weights[v] for v in path) + forced)
    return float(best)


def forced_transfer_seconds(problem: Problem, path: list[int]) -> float | None:
    """The least transfer time along `path` (nodes in order, each feeding the next) over every way
    to cut it into runs that each fit one device group (devices sharing a logical id pool their
    memory: transfers between them are free), a run after a cut also holding the buffer for the
    producer's output. None when some node fits no group (no plan exists)."""
    rate = problem.transfer_rate_bytes_per_sec
    if rate <= 0 or not path or not problem.devices:
        return 0.0 if rate <= 0 or not path else None
    pooled: dict[int, int] = {}
    for d in problem.devices:
        pooled[d.logical_id] = pooled.get(d.logical_id, 0) + d.mem_bytes
    room = max(pooled.values())
    size, out = problem.size_bytes, problem.output_bytes
    # cost[j]: least transfer time over the first j path nodes, a run ending after node j-1.
    # A run (i, j] after a cut at i costs out[path[i-1]] / rate and must hold
    # prefix[j] - prefix[i] + out[path[i-1]] <= room, i.e. key_i = prefix[i] - out[...] >= prefix[j] - room:
    # the threshold only grows, so a cut out of reach is dropped from the heap for good.
    prefix = 0
    reach: list[tuple[float, int]] = [(0.0, 0)]  # (cost so far + cut cost, key) of each cut
    cost = 0.0
    for j, v in enumerate(path, start=1):
        if size[v] > room:
            return None
        prefix += size[v]
        threshold = prefix - room
        while reach and reach[0][1] < threshold:
            heapq.heappop(reach)
        if not reach:
            return None
        cost = reach[0][0]
        if j < len(path):
            heapq.heappush(reach, (cost + out[v] / rate, prefix - out[v]))
    return cost
