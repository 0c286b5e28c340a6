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
    flags: tuple[tuple[bool, bool], ...]


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
        self.comm = [[0] * k for _ in range(k)]  # outputs sent, once per producer (torch's transfer bytes)
        self.shared = [[0] * k for _ in range(k)]  # aux bytes both partitions read (torch charges them too)
        self.latency: list[float | None] = [0.0] * k
        self.path = [0.0] * problem.num_nodes  # longest path ending at a node, within its partition
        self.tail = [0.0] * problem.num_nodes  # longest path starting at a node, within its partition
        self.paths_ok = [True] * k  # whether `path` is current for a partition's nodes
        self.tails_ok = [True] * k  # whether `tail` is
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
        for d in range(self.k):
            self._dirty(d)

    # -- memory -------------------------------------------------------------------------------
    # A node's output is counted in every other partition that reads it (the receiving buffer),
    # from the moment both the node and its reader are placed.
    def _own_bytes(self, v: int, d: int, leaving: bool) -> int:
        """v's share of partition d: its size, its buffers for inputs placed elsewhere, and the aux
        nodes only it reads there (leaving) or that d does not read yet (joining)."""
        p = self.problem
        part = self.part
        share = p.size_bytes[v]
        for u in p.inputs[v]:
            if part[u] != d and part[u] != UNPLACED:
                share += p.output_bytes[u]
        for a in p.aux_inputs[v]:
            held = self.aux_in[a].get(d, 0)
            if held == (1 if leaving else 0):
                share += p.aux_bytes[a]
        return share

    def added_bytes(self, v: int, d: int) -> int:
        """How much device d's partition grows if node v joins it (v not on d)."""
        grow = self._own_bytes(v, d, leaving=False)
        if self.part[v] != UNPLACED:  # v's readers on d no longer need a buffer for it
            grow -= self.problem.output_bytes[v] * self.users_in[v].get(d, 0)
        return grow

    def freed_bytes(self, v: int) -> int:
        """How much v's partition shrinks if v leaves it for another device (its readers there
        start to need a buffer for it)."""
        src = self.part[v]
        return self._own_bytes(v, src, leaving=True) - self.problem.output_bytes[v] * self.users_in[v].get(src, 0)

    def fits_placing(self, v: int, d: int) -> bool:
        """Whether placing unplaced v on d keeps d and the partitions of v's placed readers (which
        start to buffer v's output) within budget."""
        budgets = self.problem.devices
        if self.mem[d] + self.added_bytes(v, d) > budgets[d].mem_bytes:
            return False
        out = self.problem.output_bytes[v]
        return all(self.mem[t] + n * out <= budgets[t].mem_bytes for t, n in self.users_in[v].items() if n and t != d)

    def merged_bytes(self, p: int, q: int) -> int:
        """Bytes of partitions p and q as one: the buffers between them and the aux nodes both
        read are no longer counted twice."""
        return self.mem[p] + self.mem[q] - self.edge_bytes[p][q] - self.edge_bytes[q][p] - self.shared[p][q]

    def fits(self, v: int, d: int) -> bool:
        """Whether device d can take node v (placed elsewhere or not at all)."""
        return self.mem[d] + self.added_bytes(v, d) <= self.problem.devices[d].mem_bytes

    # -- moves --------------------------------------------------------------------------------
    def move(self, v: int, d: int) -> _Undo:
        """Put node v on device d (from wherever it is, or from unplaced)."""
        src = self.part[v]
        token = _Undo(v, src, d, tuple(self.latency), tuple(self.recomputed), tuple(zip(self.paths_ok, self.tails_ok)))
        if src == d:
            return token
        p = self.problem
        out = p.output_bytes
        if src != UNPLACED:
            self.mem[src] -= self._own_bytes(v, src, leaving=True)
        else:
            self.remaining -= p.size_bytes[v]
        if d != UNPLACED:
            self.mem[d] += self._own_bytes(v, d, leaving=False)
        else:
            self.remaining += p.size_bytes[v]
        for t, n in self.users_in[v].items():  # buffers for v's output where it is read
            before = src != UNPLACED and t != src
            after = d != UNPLACED and t != d
            if n and before != after:
                self.mem[t] += (n if after else -n) * out[v]
        part = self.part
        # v as a consumer of its inputs
        for u in p.inputs[v]:
            r = part[u]
            ui = self.users_in[u]
            if src != UNPLACED:
                ui[src] -= 1
                if src != r and r != UNPLACED:
                    self.edges[r][src] -= 1
                    self.edge_bytes[r][src] -= out[u]
                    if ui[src] == 0:
                        self.comm[r][src] -= out[u]
            if d != UNPLACED:
                before = ui.get(d, 0)
                ui[d] = before + 1
                if d != r and r != UNPLACED:
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
        if d != UNPLACED:
            if src == UNPLACED and self.latency[d] is not None:
                self._extend(v, d)
            else:
                self._dirty(d)
        part[v] = d
        if src != UNPLACED:
            self.members[src].discard(v)
            self._dirty(src)
        if d != UNPLACED:
            self.members[d].add(v)
        return token

    def _dirty(self, d: int) -> None:
        self.latency[d] = None
        self.paths_ok[d] = self.tails_ok[d] = False

    def _extend(self, v: int, d: int) -> None:
        """Partition latency of d when v (unplaced) joins it as a new sink or source: what is
        there only gets longer by v, so no recomputation (the placement orders of list scheduling)."""
        p = self.problem
        part = self.part
        before = [self.path[u] for u in p.inputs[v] if part[u] == d]
        after = [self.tail[s] for s in p.users[v] if part[s] == d]
        if after and before:
            self._dirty(d)
            return
        if after and not self.tails_ok[d]:
            self._tails(d)
        if before and not self.paths_ok[d]:
            self._dirty(d)
            return
        w = p.weights[v]
        self.path[v] = (max(before) if before else 0.0) + w
        self.tail[v] = (max(after) if after else 0.0) + w
        longest = self.path[v] if before else self.tail[v]
        if longest > self.latency[d]:
            self.latency[d] = longest
        if before:
            self.tails_ok[d] = False  # v's producers now have a longer way out
        if after:
            self.paths_ok[d] = False  # v's consumers now have a longer way in

    def undo(self, token: _Undo) -> None:
        """Take back a move: the state (and the partition latencies) are as before it."""
        self.move(token.node, token.source)
        self.latency = list(token.latencies)
        for d in (token.source, token.target):
            if d == UNPLACED:
                continue
            if self.recomputed[d] == token.recomputed[d]:
                self.paths_ok[d], self.tails_ok[d] = token.flags[d]
            else:  # node paths were recomputed for the tried state
                self.paths_ok[d] = self.tails_ok[d] = False

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

    def _tails(self, d: int) -> None:
        p = self.problem
        part, tail, w = self.part, self.tail, p.weights
        for v in sorted(self.members[d], reverse=True):
            best = None
            for s in p.users[v]:
                if part[s] == d and (best is None or tail[s] > best):
                    best = tail[s]
            tail[v] = (0.0 if best is None else best) + w[v]
        self.tails_ok[d] = True
        self.recomputed[d] += 1

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
        worst = 0.0
        for d in range(self.k):
            if not self.members[d]:
                continue
            stage = self.partition_latency(d) + self._inbound_time(d)
            worst = max(worst, stage)
        return worst

    def objective(self, objective: str) -> float:
        return self.critical_path() if objective == "latency" else self.bottleneck()

    def critical_weight(self, objective: str) -> float:
        """How much work decides the objective: the weight of the nodes on a longest path of a
        partition that is on a critical path ("latency") or is a slowest stage ("throughput").
        Lowering it without raising the objective is progress (fewer ties to break)."""
        order = self.order()
        if order is None:
            return float("inf")
        lat = {d: self.partition_latency(d) for d in order}
        if objective == "latency":
            finish, rest = {}, {}
            for d in order:
                finish[d] = max((finish[q] + self.transfer(q, d) for q in order if q in finish and self.edges[q][d]),
                                default=0.0) + lat[d]
            for d in reversed(order):
                rest[d] = lat[d] + max((self.transfer(d, r) + rest[r] for r in rest if self.edges[d][r]), default=0.0)
            top = max(finish.values(), default=0.0)
            deciding = [d for d in order if finish[d] - lat[d] + rest[d] >= top * (1 - 1e-12)]
        else:
            stage = {d: lat[d] + self._inbound_time(d) for d in order}
            top = max(stage.values(), default=0.0)
            deciding = [d for d in order if stage[d] >= top * (1 - 1e-12)]
        w = self.problem.weights
        total = 0.0
        for d in deciding:
            if not self.paths_ok[d]:
                self.latency[d] = None
                self.partition_latency(d)
            if not self.tails_ok[d]:
                self._tails(d)
            total += sum(w[v] for v in self.members[d] if self.path[v] + self.tail[v] - w[v] >= lat[d] * (1 - 1e-12))
        return total

    def _inbound_time(self, d: int) -> float:
        rate = self.problem.transfer_rate_bytes_per_sec
        inbound = sum(self.comm[q][d] for q in range(self.k) if q != d and not self.free_link[q][d])
        return inbound / rate if rate > 0 else 0.0

    def placement(self) -> Placement:
        live = [d for d in range(self.k) if self.members[d]]
        index = {d: i for i, d in enumerate(live)}
        return canonical(self.problem, Placement(tuple(index[d] for d in self.part), tuple((d,) for d in live)))
