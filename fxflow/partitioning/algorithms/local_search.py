"""Local improvement: move or swap nodes between partitions while the result fits and is better.

Candidates are nodes on a partition boundary (a producer or consumer elsewhere), tried on the
partitions of their neighbours and on one idle device, alone and together with the branch that
only feeds them; a move is kept when every device stays within budget, the partitions stay
acyclic and the objective drops, or stays and less work sits on critical paths (`Score`). When
no move helps, pairs of boundary nodes (or their branches) of two neighbouring partitions are
swapped, and when that does not help either, partitions are merged where one device can hold
both. Stops at a local optimum, after `max_rounds`, or at `deadline` (a
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
# Largest branch moved as one piece on larger graphs, and swapped as one piece on any graph.
GROUP_LIMIT = 64
SWAP_GROUP_LIMIT = 16
# Largest graph `repair` works on (each step tries every node on every device).
REPAIR_NODES = 500


class Score:
    """The objective, ties broken by `PlacementState.critical_weight` (computed only on a tie):
    moving work off the critical path without shortening it yet is still progress."""

    def __init__(self, state: PlacementState, objective: str):
        self.value = state.objective(objective) if state.order() is not None else float("inf")
        self._state, self._objective = state, objective
        self._tie: float | None = None

    def tie(self) -> float:
        if self._tie is None:
            self._tie = self._state.critical_weight(self._objective)
            self._state = None  # the state moves on; the figure is kept
        return self._tie

    def beats(self, other: "Score") -> bool:
        margin = 1e-12 * max(1.0, abs(other.value))
        if self.value < other.value - margin:
            return True
        if self.value > other.value + margin or self.value == float("inf"):
            return False
        return self.tie() < other.tie() - 1e-12 * max(1.0, abs(other.tie()))


def improve(state: PlacementState, objective: str, deadline: float | None = None, max_rounds: int = 1000,
            max_swaps_per_round: int = 2000) -> dict[str, int]:
    """Improve `state` in place; returns how many moves and swaps were kept."""
    current = Score(state, objective)
    current.tie()
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
        gained, current = _branch_round(state, objective, current, deadline)
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


def _may_fit(state: PlacementState, moves: list[tuple[int, int]]) -> bool:
    """A quick necessary condition for `moves` to fit: what arrives on a device (at least a node's
    size less the buffers its readers may stop needing) minus what may leave it (at most sizes,
    input buffers and aux nodes) fits its free bytes."""
    p = state.problem
    change: dict[int, int] = {}
    for v, d in moves:
        change[d] = change.get(d, 0) + p.size_bytes[v] - p.output_bytes[v] * len(p.users[v])
        src = state.part[v]
        change[src] = change.get(src, 0) - p.size_bytes[v] - sum(p.output_bytes[u] for u in p.inputs[v]) \
            - sum(p.aux_bytes[a] for a in p.aux_inputs[v])
    return all(state.mem[d] + grow <= p.devices[d].mem_bytes for d, grow in change.items())


def _try(state: PlacementState, objective: str, current: Score, moves: list[tuple[int, int]]) -> Score | None:
    """Apply `moves` (node, device); keep them and return the new score if every touched device stays
    within budget and the score beats `current`, else take them back and return None."""
    if len(moves) > 1 and not _may_fit(state, moves):
        return None
    touched = {state.part[v] for v, _ in moves} | {d for _, d in moves}
    tokens = [state.move(v, d) for v, d in moves]
    budgets = state.problem.devices
    if all(state.mem[d] <= budgets[d].mem_bytes for d in touched):
        score = Score(state, objective)
        if score.beats(current):
            score.tie()
            return score
    for token in reversed(tokens):
        state.undo(token)
    return None


def feeding_group(state: PlacementState, v: int, limit: int) -> list[int]:
    """v and the nodes that only feed it, directly or through each other (a branch that ends in
    v), in graph order; just [v] when that would exceed `limit` nodes."""
    p = state.problem
    group = {v}
    frontier = sorted(p.inputs[v], reverse=True)
    while frontier:
        u = frontier.pop(0)
        if u in group or not all(s in group for s in p.users[u]):
            continue
        group.add(u)
        if len(group) > limit:
            return [v]
        frontier = sorted(set(frontier) | set(p.inputs[u]), reverse=True)
    return sorted(group)


def _move_round(state: PlacementState, objective: str, current: Score, deadline: float | None) -> tuple[int, Score]:
    """Move single nodes, and each node with the branch that feeds it."""
    kept = 0
    everywhere = state.problem.num_nodes <= EXHAUSTIVE_NODES
    limit = state.problem.num_nodes // 2 if everywhere else GROUP_LIMIT
    for v in range(state.problem.num_nodes) if everywhere else _boundary(state):
        if deadline is not None and time.perf_counter() > deadline:
            break
        group = feeding_group(state, v, limit)
        for d in _targets(state, v, everywhere):
            if _fits_after(state, v, d):
                score = _try(state, objective, current, [(v, d)])
                if score is not None:
                    current, kept = score, kept + 1
                    break
            if len(group) > 1:
                score = _try(state, objective, current, [(u, d) for u in group if state.part[u] != d])
                if score is not None:
                    current, kept = score, kept + 1
                    break
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


def _swap_round(state: PlacementState, objective: str, current: Score, deadline: float | None, budget: int) -> tuple[int, Score]:
    """Swap two nodes of different partitions, or the branches that end in them."""
    everywhere = state.problem.num_nodes <= EXHAUSTIVE_NODES
    limit = SWAP_GROUP_LIMIT
    by_partition: dict[int, list[int]] = {}
    for v in range(state.problem.num_nodes) if everywhere else _boundary(state):
        by_partition.setdefault(state.part[v], []).append(v)
    groups = {v: feeding_group(state, v, limit) for nodes in by_partition.values() for v in nodes}
    tried = 0
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
                    score = _try(state, objective, current, [(v, q), (x, p)])
                    if score is None and (len(groups[v]) > 1 or len(groups[x]) > 1) and not set(groups[v]) & set(groups[x]):
                        moves = [(u, q) for u in groups[v] if state.part[u] != q] + [(u, p) for u in groups[x] if state.part[u] != p]
                        score = _try(state, objective, current, moves)
                    if score is not None:
                        return 1, score
    return 0, current


def branches(state: PlacementState, limit: int) -> list[list[int]]:
    """The maximal branches (a node with what only feeds it) of up to `limit` nodes that end where
    data meets other data or fans out: the parallel pieces of the graph."""
    p = state.problem
    heads = [v for v in range(p.num_nodes)
             if len(p.users[v]) != 1 or len(p.inputs[p.users[v][0]]) > 1 or p.users[v][0] in ()]
    out = []
    for v in heads:
        group = feeding_group(state, v, limit)
        if len(group) > 1 or not p.inputs[v]:
            out.append(group)
    return out


def _branch_round(state: PlacementState, objective: str, current: Score, deadline: float | None,
                  max_branches: int = 64) -> tuple[int, Score]:
    """Trade one branch of a partition for two of another (the pair making room for the one)."""
    found = branches(state, GROUP_LIMIT)
    if len(found) > max_branches:
        return 0, current
    owner = [state.part[b[-1]] for b in found]
    for i, one in enumerate(found):
        p = owner[i]
        for q in range(state.k):
            if q == p or not state.members[q]:
                continue
            theirs = [j for j in range(len(found)) if owner[j] == q and not set(found[j]) & set(one)]
            for a in range(len(theirs)):
                for b in range(a + 1, len(theirs)):
                    if deadline is not None and time.perf_counter() > deadline:
                        return 0, current
                    two = found[theirs[a]] + found[theirs[b]]
                    if set(found[theirs[a]]) & set(found[theirs[b]]):
                        continue
                    moves = [(u, q) for u in one if state.part[u] != q] + [(u, p) for u in two if state.part[u] != p]
                    score = _try(state, objective, current, moves)
                    if score is not None:
                        return 1, score
    return 0, current


def iterated(state: PlacementState, objective: str, deadline: float | None = None, kicks: int = 30,
             seed: int = 0) -> dict[str, int]:
    """Iterated local search: improve, then repeatedly kick a few random nodes to other devices
    and improve again, keeping the best placement seen (deterministic for a given seed)."""
    rng = random.Random(seed)
    stats = improve(state, objective, deadline)
    best_part, best = list(state.part), Score(state, objective)
    best.tie()
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
        score = Score(state, objective)
        if score.beats(best):
            score.tie()
            best_part, best = list(state.part), score
            accepted += 1
        else:
            for v, d in enumerate(best_part):
                if state.part[v] != d:
                    state.move(v, d)
    stats["kicks_kept"] = accepted
    return stats


def _block_round(state: PlacementState, objective: str, current: Score, deadline: float | None) -> tuple[int, Score]:
    """Try merging every partition into every other one that can hold both."""
    budgets = [d.mem_bytes for d in state.problem.devices]
    for p in range(state.k):
        for q in range(state.k):
            if q == p or not state.members[p] or not state.members[q] or state.merged_bytes(p, q) > budgets[q]:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return 0, current
            tokens = [state.move(v, q) for v in sorted(state.members[p])]
            score = Score(state, objective)
            if score.beats(current):
                score.tie()
                return 1, score
            for token in reversed(tokens):
                state.undo(token)
    return 0, current


def overflow(state: PlacementState) -> int:
    """Bytes by which devices exceed their budgets, summed."""
    return sum(max(0, m - d.mem_bytes) for m, d in zip(state.mem, state.problem.devices))


def repair(state: PlacementState, deadline: float | None = None) -> bool:
    """Move nodes off over-budget devices, largest overflow reduction first, keeping the partitions
    acyclic. True when every device fits in the end (never tried beyond REPAIR_NODES nodes)."""
    budgets = [d.mem_bytes for d in state.problem.devices]
    current = overflow(state)
    if current and state.problem.num_nodes > REPAIR_NODES:
        return False
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
