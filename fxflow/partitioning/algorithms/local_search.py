"""Local improvement: move or swap nodes between partitions while the result fits and is better.

Candidates are nodes on a partition boundary (a producer or consumer elsewhere), tried on the
partitions of their neighbours and on one idle device; a move is kept when every device stays
within budget, the partitions stay acyclic and the objective drops. When no single move
helps, pairs of boundary nodes of two neighbouring partitions are swapped, and when that does not
help either, partitions are merged where one device can hold both. Stops at a local optimum, after `max_rounds`, or at `deadline` (a
`time.perf_counter()` value).

    improve(state, "latency", deadline=time.perf_counter() + 1.0)
"""

from __future__ import annotations

import random
import time

from fxflow.partitioning.state import PlacementState

# Up to this many nodes, every node is tried on every partition (not only boundary nodes on
# their neighbours' partitions), and every pair of nodes in two partitions is tried as a swap.
EXHAUSTIVE_NODES = 100


def _better(new: float, old: float) -> bool:
    return new < old - 1e-12 * max(1.0, abs(old))


def improve(state: PlacementState, objective: str, deadline: float | None = None, max_rounds: int = 1000,
            max_swaps_per_round: int = 2000) -> dict[str, int]:
    """Improve `state` in place; returns how many moves and swaps were kept."""
    current = state.objective(objective)
    moves = swaps = blocks = 0
    for _ in range(max_rounds):
        if deadline is not None and time.perf_counter() > deadline:
            break
        gained, current = _move_round(state, objective, current, deadline)
        moves += gained
        if gained:
            continue
        gained, current = _swap_round(state, objective, current, deadline, max_swaps_per_round)
        swaps += gained
        if gained:
            continue
        gained, current = _block_round(state, objective, current, deadline)
        blocks += gained
        if not gained:
            break
    return {"moves": moves, "swaps": swaps, "block_moves": blocks}


def _neighbour_partitions(state: PlacementState, v: int) -> set[int]:
    p = state.problem
    part = state.part
    return {part[u] for u in p.inputs[v]} | {part[s] for s in p.users[v]}


def _boundary(state: PlacementState) -> list[int]:
    part = state.part
    return [v for v in range(state.problem.num_nodes) if _neighbour_partitions(state, v) - {part[v]}]


def _fits_after(state: PlacementState, v: int, d: int) -> bool:
    """Both ends of moving v to d stay within budget (leaving can grow the source: v's users there
    start to receive v from outside)."""
    src = state.part[v]
    devices = state.problem.devices
    if state.mem[src] - state.freed_bytes(v) > devices[src].mem_bytes:
        return False
    return state.fits(v, d)


def _move_round(state: PlacementState, objective: str, current: float, deadline: float | None) -> tuple[int, float]:
    kept = 0
    everywhere = state.problem.num_nodes <= EXHAUSTIVE_NODES
    for v in range(state.problem.num_nodes) if everywhere else _boundary(state):
        if deadline is not None and time.perf_counter() > deadline:
            break
        src = state.part[v]
        for d in _targets(state, v, everywhere):
            if not _fits_after(state, v, d):
                continue
            token = state.move(v, d)
            value = state.objective(objective) if state.order() is not None else float("inf")
            if _better(value, current):
                current = value
                kept += 1
                break
            state.undo(token)
    return kept, current


def _targets(state: PlacementState, v: int, everywhere: bool) -> list[int]:
    """Partitions worth trying for v: its neighbours' (every other one on small graphs), plus one
    idle device of each budget."""
    src = state.part[v]
    if everywhere:
        busy = {d for d in range(state.k) if state.members[d]}
    else:
        busy = _neighbour_partitions(state, v)
    idle = {}
    for d in range(state.k):
        if not state.members[d]:
            idle.setdefault(state.problem.devices[d].mem_bytes, d)
    return sorted((busy | set(idle.values())) - {src})


def _swap_round(state: PlacementState, objective: str, current: float, deadline: float | None, budget: int) -> tuple[int, float]:
    everywhere = state.problem.num_nodes <= EXHAUSTIVE_NODES
    by_partition: dict[int, list[int]] = {}
    for v in range(state.problem.num_nodes) if everywhere else _boundary(state):
        by_partition.setdefault(state.part[v], []).append(v)
    tried = 0
    devices = state.problem.devices
    for p, nodes in sorted(by_partition.items()):
        for q, others in sorted(by_partition.items()):
            if q <= p:
                continue
            for v in nodes:
                if not everywhere and q not in _neighbour_partitions(state, v):
                    continue
                for x in others:
                    if tried >= budget or (deadline is not None and time.perf_counter() > deadline):
                        return 0, current
                    if not everywhere and p not in _neighbour_partitions(state, x):
                        continue
                    tried += 1
                    first = state.move(v, q)
                    second = state.move(x, p)
                    ok = state.mem[p] <= devices[p].mem_bytes and state.mem[q] <= devices[q].mem_bytes
                    value = state.objective(objective) if ok and state.order() is not None else float("inf")
                    if _better(value, current):
                        return 1, value
                    state.undo(second)
                    state.undo(first)
    return 0, current


def iterated(state: PlacementState, objective: str, deadline: float | None = None, kicks: int = 30,
             seed: int = 0) -> dict[str, int]:
    """Iterated local search: improve, then repeatedly kick a few random nodes to other devices
    and improve again, keeping the best placement seen (deterministic for a given seed)."""
    rng = random.Random(seed)
    stats = improve(state, objective, deadline)
    best_part, best = list(state.part), state.objective(objective)
    accepted = 0
    for _ in range(kicks):
        if deadline is not None and time.perf_counter() > deadline:
            break
        if rng.random() < 0.25:
            _exchange_devices(state, rng)
        for v in rng.sample(range(state.problem.num_nodes), min(state.problem.num_nodes, rng.randint(1, 3))):
            options = [d for d in range(state.k) if d != state.part[v] and _fits_after(state, v, d)]
            rng.shuffle(options)
            for d in options:
                token = state.move(v, d)
                if state.order() is not None:
                    break
                state.undo(token)
        improve(state, objective, deadline)
        value = state.objective(objective)
        if _better(value, best):
            best_part, best = list(state.part), value
            accepted += 1
        else:
            for v, d in enumerate(best_part):
                if state.part[v] != d:
                    state.move(v, d)
    stats["kicks_kept"] = accepted
    return stats


def _block_round(state: PlacementState, objective: str, current: float, deadline: float | None) -> tuple[int, float]:
    """Try merging every partition into every other one that can hold both."""
    budgets = [d.mem_bytes for d in state.problem.devices]
    for p in range(state.k):
        for q in range(state.k):
            if q == p or not state.members[p] or not state.members[q] or state.merged_bytes(p, q) > budgets[q]:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return 0, current
            tokens = [state.move(v, q) for v in sorted(state.members[p])]
            value = state.objective(objective) if state.order() is not None else float("inf")
            if _better(value, current):
                return 1, value
            for token in reversed(tokens):
                state.undo(token)
    return 0, current


def overflow(state: PlacementState) -> int:
    """Bytes by which devices exceed their budgets, summed."""
    return sum(max(0, m - d.mem_bytes) for m, d in zip(state.mem, state.problem.devices))


def repair(state: PlacementState, deadline: float | None = None) -> bool:
    """Move nodes off over-budget devices, largest overflow reduction first, keeping the partitions
    acyclic. True when every device fits in the end."""
    budgets = [d.mem_bytes for d in state.problem.devices]
    current = overflow(state)
    while current > 0:
        if deadline is not None and time.perf_counter() > deadline:
            return False
        best = None
        for v in range(state.problem.num_nodes):
            src = state.part[v]
            if state.mem[src] <= budgets[src]:
                continue
            shrink = state.freed_bytes(v)
            for d in range(state.k):
                if d == src:
                    continue
                grow = state.added_bytes(v, d)
                after = (current - min(shrink, state.mem[src] - budgets[src])
                         + max(0, state.mem[d] + grow - max(budgets[d], state.mem[d])))
                if after < current and (best is None or (after, v, d) < best):
                    token = state.move(v, d)
                    if state.order() is not None:
                        best = (after, v, d)
                    state.undo(token)
        if best is None:
            return False
        state.move(best[1], best[2])
        current = overflow(state)
    return True


def _exchange_devices(state: PlacementState, rng: random.Random) -> None:
    """Swap the contents of two devices (one may be idle) when both still fit: no better by itself
    with interchangeable links, but it frees a larger device for what comes next."""
    budgets = [d.mem_bytes for d in state.problem.devices]
    pairs = [(p, q) for p in range(state.k) for q in range(p + 1, state.k)
             if (state.members[p] or state.members[q]) and state.mem[p] <= budgets[q] and state.mem[q] <= budgets[p]]
    if not pairs:
        return
    p, q = rng.choice(pairs)
    first, second = sorted(state.members[p]), sorted(state.members[q])
    for v in first:
        state.move(v, q)
    for v in second:
        state.move(v, p)
