"""Cut partitions by when their inputs arrive: work that is ready early need not wait for late inputs.

torch's critical path adds a partition's whole latency after its last parent finishes, even for
the nodes of that partition that need nothing from the parent. A device that runs parallel
branches beside the join they feed (a few embedding tables beside the concatenation of all of
them) therefore pays its branches again after the slowest remote branch arrives. Cut such a
partition in two on the same device, the nodes ready early in one and the rest in the other,
and the branches run while the remote ones do: the transfer between the two is free, and the
critical path no longer counts the branches twice.

    placement = split_by_arrival(problem, placement)    # never worse under "latency"

Times are those of the finest plan on the same devices (every node its own partition). For each
partition, every node gets the time its inputs from other partitions could be there (passed
along paths inside the partition) and the time the rest of the graph waits on its output; each
distinct time is a candidate cut, the part ready early (or awaited longest) going first. The
producers in other partitions that the early part reads are cut out of theirs too where that is
what keeps it waiting. Each part cut off is closed under its partition's own inputs, so it only
feeds the rest, and no cycle appears. A cut is kept when every device stays within budget (the
parts buffer what they read from each other) and the critical path drops; rounds go on until no
cut helps, `max_evaluations` plans were tried or the deadline passed.
"""

from __future__ import annotations

import time

from fxflow.partitioning.cost import objective_value
from fxflow.partitioning.errors import InvalidPlacement
from fxflow.partitioning.placement import Placement, canonical, device_loads, split_components
from fxflow.partitioning.problem import Problem

# Relative improvement a cut must bring to be kept (against float noise).
EPSILON = 1e-12
# Cut points tried per partition and direction at most (evenly spread over its distinct times).
LEVELS = 8


def split_by_arrival(problem: Problem, placement: Placement, max_evaluations: int = 200,
                     deadline: float | None = None) -> Placement:
    """`placement` with partitions cut where that shortens the critical path (then cut into
    independent pieces); `placement` itself when nothing helps. Stops after `max_evaluations`
    candidate plans or at `deadline` (a `time.perf_counter()` value)."""
    value = objective_value(problem, placement, "latency")
    evaluations = 0
    while evaluations < max_evaluations:
        better = None
        for candidate in _cuts(problem, placement):
            if evaluations >= max_evaluations or (deadline is not None and time.perf_counter() > deadline):
                return placement
            evaluations += 1
            if not _fits(problem, candidate):
                continue
            new = objective_value(problem, candidate, "latency")
            if new < value - EPSILON * max(1.0, abs(value)):
                better = (candidate, new)
                break
        if better is None:
            return placement
        placement = split_components(problem, better[0])
        value = min(better[1], objective_value(problem, placement, "latency"))
    return placement


def _fits(problem: Problem, placement: Placement) -> bool:
    return all(load <= d.mem_bytes for load, d in zip(device_loads(problem, placement), problem.devices))


def _cuts(problem: Problem, placement: Placement):
    """Placements with one partition cut in two on its device, at an arrival time (nodes ready early
    first) or a departure time (nodes whose results are awaited longest first), biggest spread
    between a partition's earliest and latest time first. Times are those of the finest plan on
    the same devices (every node its own partition): what each node could reach if cut free."""
    part = placement.partition_of
    devices = [placement.devices[q] for q in part]
    rate = problem.transfer_rate_bytes_per_sec
    out, w = problem.output_bytes, problem.weights

    def transfer(u: int, v: int) -> float:
        return out[u] / rate if rate > 0 and devices[u] != devices[v] else 0.0

    n = problem.num_nodes
    start = [0.0] * n  # earliest start of each node in the finest plan
    for v, preds in enumerate(problem.inputs):
        start[v] = max((start[u] + w[u] + transfer(u, v) for u in preds), default=0.0)
    rest = [0.0] * n  # longest way from a node's start to the end
    for v in reversed(range(n)):
        rest[v] = w[v] + max((transfer(v, s) + rest[s] for s in problem.users[v]), default=0.0)
    plans = []
    for p, members in enumerate(placement.members()):
        ready: dict[int, float] = {}
        for v in members:  # arrival: when v's inputs from other partitions are there
            ready[v] = max((ready[u] if part[u] == p else start[u] + w[u] + transfer(u, v) for u in problem.inputs[v]),
                           default=0.0)
        due: dict[int, float] = {}
        for v in reversed(members):  # departure: how long the rest of the graph waits on v's output
            due[v] = max((due[s] if part[s] == p else transfer(v, s) + rest[s] for s in problem.users[v]), default=0.0)
        for times, early in ((ready, True), (due, False)):
            levels = sorted(set(times.values()))
            spread = levels[-1] - levels[0] if levels else 0.0
            chosen = levels if early else levels[1:]
            if len(chosen) > LEVELS:  # evenly spread, the extremes kept
                chosen = [chosen[round(i * (len(chosen) - 1) / (LEVELS - 1))] for i in range(LEVELS)]
            for level in chosen:
                plans.append((-spread, p, level, early, times))
    plans.sort(key=lambda plan: plan[:4])
    members = placement.members()
    for _, p, level, early, times in plans:
        first = {v for v in members[p] if (times[v] <= level if early else times[v] >= level)}
        whole = len(first) == len(members[p])  # nothing cut from p: only its producers are
        own = [] if whole else [first]
        producers = _producers_for(problem, part, p, first)
        variants = ([own] if own else []) + ([own + producers] if producers else [])
        for variant in variants:
            partition_of = list(part)
            devs = list(placement.devices)
            for group in variant:
                q = part[next(iter(group))]
                for v in group:
                    partition_of[v] = len(devs)
                devs.append(placement.devices[q])
            try:
                yield canonical(problem, Placement(tuple(partition_of), tuple(devs)))
            except InvalidPlacement:
                continue


def _producers_for(problem: Problem, part: tuple[int, ...], p: int, first: set[int]) -> list[set[int]]:
    """For the nodes `first` cut from partition p: in each other partition, the producers they read
    and what those need inside their partition, when that is not the whole partition (so that the
    cut-off nodes need not wait for all of it)."""
    needed: dict[int, set[int]] = {}
    for v in first:
        for u in problem.inputs[v]:
            if part[u] != p:
                needed.setdefault(part[u], set()).add(u)
    sizes: dict[int, int] = {}
    for q in part:
        sizes[q] = sizes.get(q, 0) + 1
    groups = []
    for q, seeds in needed.items():
        closure, stack = set(seeds), list(seeds)
        while stack:
            for u in problem.inputs[stack.pop()]:
                if part[u] == q and u not in closure:
                    closure.add(u)
                    stack.append(u)
        if len(closure) < sizes[q]:
            groups.append(closure)
    return groups
