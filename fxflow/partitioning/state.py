"""A placement under construction or repair, kept up to date one node move at a time.

Partition d is the work of device d (one partition per device, empty while the device is idle).
Moving a node updates memory, partition edges and transfer bytes in time proportional to the
node's degree; partition latencies are recomputed lazily, only for the two partitions a move
touched. List scheduling grows a state node by node, local search moves and swaps nodes in it:

    state = PlacementState(problem)                 # nothing placed
    state.fits(v, d); state.move(v, d)              # place node v on device d
    token = state.move(v, e); value = state.objective("latency"); state.undo(token)
    placement = state.placement()                   # canonical Placement
"""

from __future__ import annotations

from dataclasses import dataclass

from fxflow.partitioning.placement import Placement, canonical
from fxflow.partitioning.problem import Problem

UNPLACED = -1


@dataclass
class _Undo:
    node: int
    source: int
    target: int
    latencies: tuple[float | None, ...]
    recomputed: tuple[int, ...]


class PlacementState:
    """Mutable node -> device assignment with torch's memory and latency accounting."""

    def __init__(self, problem: Problem, partition_of: list[int] | None = None):
        self.problem = problem
        k = len(problem.devices)
        self.k = k
        self.part = [UNPLACED] * problem.num_nodes
        self.members: list[set[int]] = [set() for _ in range(k)]
        self.mem = [0] * k
        self.users_in: list[dict[int, int]] = [{} for _ in range(problem.num_nodes)]
        self.aux_in: list[dict[int, int]] = [{} for _ in problem.aux_names]
        self.edges = [[0] * k for _ in range(k)]  # data edges between partitions
        self.edge_bytes = [[0] * k for _ in range(k)]  # their bytes, once per edge (the receivers' buffers)
        self.comm = [[0] * k for _ in range(k)]
        self.shared = [[0] * k for _ in range(k)]
        self.latency: list[float | None] = [0.0] * k
        self.path = [0.0] * problem.num_nodes  # longest path ending at a node, within its partition
        self.paths_ok = [True] * k  # whether `path` is current for a partition's nodes
        self.recomputed = [0] * k
        self.remaining = sum(problem.size_bytes)
        logical = [d.logical_id for d in problem.devices]
        self.free_link = [[logical[a] == logical[b] for b in range(k)] for a in range(k)]
        if partition_of is not None:
            self._load(partition_of)

    def _load(self, device_of: list[int]) -> None:
        """Place every node at once (what n calls of `move` would do, in one pass)."""
        p = self.problem
        out = p.output_bytes
        self.part = part = list(device_of)
        for v, d in enumerate(part):
            self.members[d].add(v)
            self.mem[d] += p.size_bytes[v]
            for u in p.inputs[v]:
                r = part[u]
                ui = self.users_in[u]
                ui[d] = ui.get(d, 0) + 1
                if r != d:
                    self.mem[d] += out[u]
                    self.edges[r][d] += 1
                    self.edge_bytes[r][d] += out[u]
                    if ui[d] == 1:
                        self.comm[r][d] += out[u]
            for a in p.aux_inputs[v]:
                holders = self.aux_in[a]
                holders[d] = holders.get(d, 0) + 1
        for a, holders in enumerate(self.aux_in):
            on = sorted(holders)
            for d in on:
                self.mem[d] += p.aux_bytes[a]
            for i, q in enumerate(on):
                for r in on[i + 1:]:
                    self.shared[q][r] += p.aux_bytes[a]
                    self.shared[r][q] += p.aux_bytes[a]
        self.remaining = 0
        self.latency = [None] * self.k

    # -- memory -------------------------------------------------------------------------------
    def added_bytes(self, v: int, d: int) -> int:
        """How much device d's partition grows if node v joins it (v not on d)."""
        p = self.problem
        part = self.part
        grow = p.size_bytes[v]
        for u in p.inputs[v]:
            if part[u] != d and part[u] != UNPLACED:
                grow += p.output_bytes[u]
        grow -= p.output_bytes[v] * self.users_in[v].get(d, 0)
        for a in p.aux_inputs[v]:
            if not self.aux_in[a].get(d):
                grow += p.aux_bytes[a]
        return grow

    def freed_bytes(self, v: int) -> int:
        """How much v's partition shrinks if v leaves it."""
        p = self.problem
        part = self.part
        d = part[v]
        shrink = p.size_bytes[v]
        for u in p.inputs[v]:
            if part[u] != d and part[u] != UNPLACED:
                shrink += p.output_bytes[u]
        shrink -= p.output_bytes[v] * self.users_in[v].get(d, 0)
        for a in p.aux_inputs[v]:
            if self.aux_in[a].get(d) == 1:
                shrink += p.aux_bytes[a]
        return shrink

    def merged_bytes(self, p: int, q: int) -> int:
        """Bytes of partitions p and q as one: the buffers between them and the aux nodes both
        read are no longer counted twice."""
        return self.mem[p] + self.mem[q] - self.edge_bytes[p][q] - self.edge_bytes[q][p] - self.shared[p][q]

    def fits(self, v: int, d: int) -> bool:
        return self.mem[d] + self.added_bytes(v, d) <= self.problem.devices[d].mem_bytes

    # -- moves --------------------------------------------------------------------------------
    def move(self, v: int, d: int) -> _Undo:
        """Put node v on device d (from wherever it is, or from unplaced)."""
        src = self.part[v]
        token = _Undo(v, src, d, tuple(self.latency), tuple(self.recomputed))
        if src == d:
            return token
        p = self.problem
        out = p.output_bytes
        if src != UNPLACED:
            self.mem[src] -= self.freed_bytes(v)
        else:
            self.remaining -= p.size_bytes[v]
        if d != UNPLACED:
            self.mem[d] += self.added_bytes(v, d)
        else:
            self.remaining += p.size_bytes[v]
        part = self.part
        # v as a consumer of its inputs
        for u in p.inputs[v]:
            r = part[u]
            if r == UNPLACED:
                continue
            ui = self.users_in[u]
            if src != UNPLACED:
                ui[src] -= 1
                if src != r:
                    self.edges[r][src] -= 1
                    self.edge_bytes[r][src] -= out[u]
                    if ui[src] == 0:
                        self.comm[r][src] -= out[u]
            if d != UNPLACED:
                before = ui.get(d, 0)
                ui[d] = before + 1
                if d != r:
                    self.edges[r][d] += 1
                    self.edge_bytes[r][d] += out[u]
                    if before == 0:
                        self.comm[r][d] += out[u]
        # v as a producer for its users
        for t, n in self.users_in[v].items():
            if n == 0:
                continue
            if src != UNPLACED and t != src:
                self.edges[src][t] -= n
                self.edge_bytes[src][t] -= n * out[v]
                self.comm[src][t] -= out[v]
            if d != UNPLACED and t != d:
                self.edges[d][t] += n
                self.edge_bytes[d][t] += n * out[v]
                self.comm[d][t] += out[v]
        for a in p.aux_inputs[v]:
            holders = self.aux_in[a]
            if src != UNPLACED:
                holders[src] -= 1
                if holders[src] == 0:
                    for r, n in holders.items():
                        if n and r != src:
                            self.shared[src][r] -= p.aux_bytes[a]
                            self.shared[r][src] -= p.aux_bytes[a]
            if d != UNPLACED:
                if not holders.get(d):
                    for r, n in holders.items():
                        if n and r != d:
                            self.shared[d][r] += p.aux_bytes[a]
                            self.shared[r][d] += p.aux_bytes[a]
                holders[d] = holders.get(d, 0) + 1
        part[v] = d
        if src != UNPLACED:
            self.members[src].discard(v)
            self.latency[src] = None
        if d != UNPLACED:
            self.members[d].add(v)
            if src == UNPLACED and self.latency[d] is not None and self.paths_ok[d] and not self.users_in[v].get(d):
                # a new sink of d's partition: its path only extends what is there
                best = max((self.path[u] for u in p.inputs[v] if part[u] == d), default=None)
                self.path[v] = (0.0 if best is None else best) + p.weights[v]
                if self.path[v] > self.latency[d]:
                    self.latency[d] = self.path[v]
            else:
                self.latency[d] = None
        return token

    def undo(self, token: _Undo) -> None:
        """Take back a move: the state (and the partition latencies) are as before it."""
        self.move(token.node, token.source)
        self.latency = list(token.latencies)
        for d in (token.source, token.target):
            if d != UNPLACED and self.recomputed[d] != token.recomputed[d]:
                self.paths_ok[d] = False  # node paths were recomputed for the tried state

    # -- structure ----------------------------------------------------------------------------
    def reaches(self, start: int, goal: int) -> bool:
        """Whether partition `goal` depends on partition `start` (a path of partition edges)."""
        seen = {start}
        stack = [start]
        while stack:
            q = stack.pop()
            if q == goal:
                return True
            for r in range(self.k):
                if self.edges[q][r] and r not in seen:
                    seen.add(r)
                    stack.append(r)
        return False

    def order(self) -> list[int] | None:
        """Non-empty partitions in a topological order, None on a cycle."""
        live = [d for d in range(self.k) if self.members[d]]
        indegree = {d: sum(1 for q in live if self.edges[q][d]) for d in live}
        ready = [d for d in live if indegree[d] == 0]
        out = []
        while ready:
            q = ready.pop()
            out.append(q)
            for r in live:
                if self.edges[q][r]:
                    indegree[r] -= 1
                    if indegree[r] == 0:
                        ready.append(r)
        return out if len(out) == len(live) else None

    # -- latency ------------------------------------------------------------------------------
    def partition_latency(self, d: int) -> float:
        if self.latency[d] is None:
            p = self.problem
            part, path, w = self.part, self.path, p.weights
            best_total = 0.0
            for v in sorted(self.members[d]):
                best = None
                for u in p.inputs[v]:
                    if part[u] == d and (best is None or path[u] > best):
                        best = path[u]
                path[v] = (0.0 if best is None else best) + w[v]
                if path[v] > best_total:
                    best_total = path[v]
            self.latency[d] = best_total
            self.paths_ok[d] = True
            self.recomputed[d] += 1
        return self.latency[d]

    def transfer(self, q: int, d: int) -> float:
        rate = self.problem.transfer_rate_bytes_per_sec
        if self.free_link[q][d] or rate == 0:
            return 0.0
        return (self.comm[q][d] + self.shared[q][d]) / rate

    def critical_path(self) -> float:
        """torch's critical path of the current (acyclic) state; transfers free at rate 0."""
        order = self.order()
        if order is None:
            return float("inf")
        finish = {}
        critical = 0.0
        for d in order:
            start, first = 0.0, True
            for q in order:
                if q in finish and self.edges[q][d]:
                    t = finish[q] + self.transfer(q, d)
                    if first or t > start:
                        start, first = t, False
            finish[d] = start + self.partition_latency(d)
            if finish[d] > critical and not any(self.edges[d][r] for r in order):
                critical = finish[d]
        return critical

    def bottleneck(self) -> float:
        if self.order() is None:
            return float("inf")
        rate = self.problem.transfer_rate_bytes_per_sec
        worst = 0.0
        for d in range(self.k):
            if not self.members[d]:
                continue
            inbound = sum(self.comm[q][d] for q in range(self.k) if q != d and not self.free_link[q][d])
            stage = self.partition_latency(d) + (inbound / rate if rate > 0 else 0.0)
            worst = max(worst, stage)
        return worst

    def objective(self, objective: str) -> float:
        return self.critical_path() if objective == "latency" else self.bottleneck()

    def placement(self) -> Placement:
        live = [d for d in range(self.k) if self.members[d]]
        index = {d: i for i, d in enumerate(live)}
        return canonical(self.problem, Placement(tuple(index[d] for d in self.part), tuple((d,) for d in live)))
