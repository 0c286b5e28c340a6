"""The best contiguous split of a topological order over the devices, by dynamic programming.

A contiguous split cuts the node order into segments, one device each, run as a pipeline.
For every cut position b and every multiset of devices used so far, the table holds the best
value of the segments ending at b; a segment [a, b) is one partition whose latency is its
longest path and whose inbound transfer is what crosses its left cut. All segments ending at b
are evaluated at once with numpy over their start a, so the whole table costs O(n * window)
array work, where the window is how many nodes the largest device can hold. The arrays over starts
hold only the cuts some state can start from (on four devices of 30% of the bytes, 63% of them).

Objectives (`objective=`):

* "latency": the pipeline latency, sum over segments of (latency + inbound transfer time).
  It bounds torch's critical path from above and equals it when each segment only feeds the
  next one, which is the case for chains.
* "throughput": the slowest segment (latency + inbound transfer time), exactly
  `cost.bottleneck_latency`.

Devices with equal memory are interchangeable, so states count devices used per memory size.

    result = pipeline_split(problem, objective="latency", order="graph")
    result.placement, result.info["pipeline_latency"]
"""

from __future__ import annotations

import time

import numpy as np

from fxflow.partitioning.cost import OBJECTIVES, Objective, objective_value
from fxflow.partitioning.errors import PlacementRefused, refuse_if_unplaceable
from fxflow.partitioning.orders import ORDERS, permuted
from fxflow.partitioning.placement import Placement, canonical
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result


def pipeline_split(problem: Problem, objective: Objective = "latency", order: str = "graph") -> Result:
    """Optimal contiguous split of `order` ("graph", "earliest_start" or "upward_rank") for `objective`."""
    started = time.perf_counter()
    refuse_if_unplaceable(problem)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {sorted(ORDERS)}, not {order!r}")
    devices_of, value = best_split(problem, objective, ORDERS[order](problem), order)
    used = sorted(set(devices_of))
    index = {d: i for i, d in enumerate(used)}
    placement = canonical(problem, Placement(tuple(index[d] for d in devices_of), tuple((d,) for d in used)))
    return Result(
        placement, "pipeline", objective, objective_value(problem, placement, objective), optimal=None,
        info={"order": order, "contiguous_optimum": value, "optimal_among_contiguous_splits": True,
              "seconds": time.perf_counter() - started},
    )


def best_split(problem: Problem, objective: str, sequence: list[int], order_name: str = "given") -> tuple[list[int], float]:
    """The device of every node in the best split of `sequence` (a topological order), and its value."""
    identity = len(sequence) == problem.num_nodes and all(v == i for i, v in enumerate(sequence))
    segments, value = _best_segments(problem if identity else permuted(problem, sequence), objective, order_name)
    device_of = [0] * problem.num_nodes
    for a, b, d in segments:
        for i in range(a, b):
            device_of[sequence[i]] = d
    return device_of, value


def _best_segments(problem: Problem, objective: str, order_name: str) -> tuple[list[tuple[int, int, int]], float]:
    """Segments (start, end, device index) of the best split of the problem's own node order."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    n = problem.num_nodes
    devices = problem.devices
    mems = sorted({d.mem_bytes for d in devices}, reverse=True)
    members = [[i for i, d in enumerate(devices) if d.mem_bytes == m] for m in mems]
    counts = [len(m) for m in members]
    radix = [1]
    for c in counts[:-1]:
        radix.append(radix[-1] * (c + 1))
    num_states = radix[-1] * (counts[-1] + 1)
    used = [[(s // radix[c]) % (counts[c] + 1) for c in range(len(counts))] for s in range(num_states)]
    # A state can sit at cut a only if the nodes before a fit its devices and the rest fits the others.
    capacity = [sum(used[s][c] * mems[c] for c in range(len(counts))) for s in range(num_states)]
    everything = sum(c * m for c, m in zip(counts, mems))
    transitions = [(s, s + radix[c], c) for s in range(num_states) for c in range(len(counts)) if used[s][c] < counts[c]]

    value = np.full((num_states, n + 1), np.inf)
    value[0, 0] = 0.0
    from_a = np.full((num_states, n + 1), -1, dtype=np.int64)
    from_class = np.full((num_states, n + 1), -1, dtype=np.int64)

    sizes = np.asarray(problem.size_bytes, dtype=np.int64)
    prefix = np.concatenate([[0], np.cumsum(sizes)])
    weights = problem.weights
    out = problem.output_bytes
    aux_bytes = problem.aux_bytes
    rate = problem.transfer_rate_bytes_per_sec
    latency = objective == "latency"
    last_user = [max(us, default=-1) for us in problem.users]

    first_cut = [int(np.searchsorted(prefix, prefix[n] - (everything - capacity[s]), side="left")) for s in range(num_states)]
    last_cut = [int(np.searchsorted(prefix, capacity[s], side="right")) - 1 for s in range(num_states)]
    # Only cuts where some state that can still grow may sit can start a segment; the arrays over
    # starts hold those alone (`rank[a]`: how many such starts lie before a), so a device-sized window
    # costs what its usable starts cost (on four devices of 30% of the bytes, 63% of it).
    starts = usable_starts(n, [(first_cut[s], last_cut[s]) for s in {s for s, _, _ in transitions}])
    rank = np.concatenate([[0], np.cumsum(starts)]).tolist()
    longest = np.zeros(rank[-1])  # longest path of segment [a, b), per usable start a
    # Bytes of segment [a, b) besides its nodes' own sizes (buffers for inputs from before a, aux nodes),
    # less prefix[a]: the segment holds prefix[b] + unplaced[a], so each cut b compares one array.
    unplaced = -prefix[starts]
    inbound = np.zeros(rank[-1], dtype=np.int64)  # bytes crossing into segment [a, b)
    transfer = np.zeros(rank[-1])  # inbound / rate, kept beside it (its updates are short slices)
    ending: dict[int, tuple[int, np.ndarray]] = {}  # node u -> (first start's rank, longest path ending at u per start)
    seen_user = [-1] * n
    aux_seen = [-1] * len(aux_bytes)
    lo = 0
    biggest = mems[0]
    for v in range(n):
        b = v + 1
        while prefix[b] - prefix[lo] > biggest:
            lo += 1
        low_rank, b_rank = rank[lo], rank[b]
        width = b_rank - low_rank
        inside = [u for u in problem.inputs[v] if u >= lo]
        if len(inside) == 1:  # the common case: one producer within reach
            u = inside[0]
            start, path = ending[u]
            reach = rank[u + 1] - low_rank  # starts at or before u: the path through u reaches them
            path_v = np.empty(width)
            np.add(path[low_rank - start : reach + low_rank - start], weights[v], out=path_v[:reach])
            path_v[reach:] = weights[v]
        elif not inside:
            path_v = np.full(width, float(weights[v]))
        else:  # a join: the latest producer reaches furthest back; the others are maxed in where they reach
            inside.sort(reverse=True)
            start, path = ending[inside[0]]
            reach = rank[inside[0] + 1] - low_rank
            path_v = np.empty(width)
            path_v[:reach] = path[low_rank - start : reach + low_rank - start]
            path_v[reach:] = 0.0
            for u in inside[1:]:
                start, path = ending[u]
                reach = rank[u + 1] - low_rank
                np.maximum(path_v[:reach], path[low_rank - start : reach + low_rank - start], out=path_v[:reach])
            path_v += weights[v]
        ending[v] = (low_rank, path_v)
        np.maximum(longest[low_rank:b_rank], path_v, out=longest[low_rank:b_rank])
        for u in problem.inputs[v]:
            if u + 1 < b:
                unplaced[rank[max(lo, u + 1)] : b_rank] += out[u]
            first_new = rank[max(lo, u + 1, seen_user[u] + 1)]
            if first_new < b_rank:
                inbound[first_new:b_rank] += out[u]
                if rate > 0:
                    transfer[first_new:b_rank] = inbound[first_new:b_rank] / rate
            seen_user[u] = v
            if last_user[u] == v:
                ending.pop(u, None)
        for x in problem.aux_inputs[v]:
            first_new = rank[max(lo, aux_seen[x] + 1)]
            unplaced[first_new:b_rank] += aux_bytes[x]
            if latency and aux_seen[x] >= 0:
                inbound[first_new:b_rank] += aux_bytes[x]
                if rate > 0:
                    transfer[first_new:b_rank] = inbound[first_new:b_rank] / rate
            aux_seen[x] = v
        if not problem.users[v]:
            ending.pop(v, None)

        done, rest = prefix[b], prefix[n] - prefix[b]
        active = []
        for s, target, c in transitions:
            if capacity[target] < done or everything - capacity[target] < rest:
                continue
            first, last = max(lo, first_cut[s]), min(b - 1, last_cut[s])
            if first <= last:  # every start in [first, last] is usable: ranks are consecutive there
                active.append((s, target, c, first, last))
        if not active:
            continue
        low = min(rank[t[3]] for t in active)
        high = max(rank[t[4]] for t in active) + 1
        cost = longest[low:high] + transfer[low:high] if rate > 0 else longest[low:high]
        for s, target, c, first, last in active:
            window = slice(rank[first] - low, rank[last] + 1 - low)
            previous = value[s, first : last + 1]
            candidate = previous + cost[window] if latency else np.maximum(previous, cost[window])
            candidate[unplaced[rank[first] : rank[last] + 1] > mems[c] - prefix[b]] = np.inf
            pick = int(candidate.argmin())
            if candidate[pick] < value[target, b]:
                value[target, b] = candidate[pick]
                from_a[target, b] = first + pick
                from_class[target, b] = c

    finals = value[:, n]
    if not np.isfinite(finals).any():
        raise _refusal(problem, value, used, counts, mems, prefix, order_name)
    segments_used = np.array([sum(u) for u in used])
    best_state = int(min(range(num_states), key=lambda s: (finals[s], segments_used[s])))
    segments = []
    s, b = best_state, n
    next_device = [0] * len(counts)
    while b > 0:
        a, c = int(from_a[s, b]), int(from_class[s, b])
        segments.append((a, b, c))
        s -= radix[c]
        b = a
    segments.reverse()
    placed = []
    for a, b, c in segments:
        placed.append((a, b, members[c][next_device[c]]))
        next_device[c] += 1
    return placed, float(finals[best_state])


def usable_starts(n: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which of the cuts 0..n can start a segment: those inside the span [first, last] of cuts where
    some state that still has devices to give may sit (the nodes before fit its devices, the rest
    fit the others)."""
    starts = np.zeros(n + 1, dtype=bool)
    for first, last in spans:
        starts[first : last + 1] = True
    return starts


def _refusal(problem: Problem, value: np.ndarray, used: list[list[int]], counts: list[int], mems: list[int],
             prefix: np.ndarray, order_name: str) -> PlacementRefused:
    """Say how far a contiguous split gets, and what is left when the devices run out."""
    reached = [b for b in range(value.shape[1]) if np.isfinite(value[:, b]).any()]
    furthest = max(reached)
    free = max(sum((counts[c] - used[s][c]) * mems[c] for c in range(len(counts)))
               for s in range(value.shape[0]) if np.isfinite(value[s, furthest]))
    rest = int(prefix[-1] - prefix[furthest])
    if rest > free:
        why = f"short by {rest - free} B"
    else:
        why = "too little once split into device-sized pieces with buffers for the data crossing the cuts"
    return PlacementRefused(
        f"no contiguous split of the {order_name} order fits the devices: they hold at most the first {furthest} of "
        f"{problem.num_nodes} nodes; from '{problem.names[furthest]}' on, {rest} B of nodes remain for {free} B of "
        f"unused devices: {why}",
        problem.names[furthest], rest, free,
    )
