"""A placement (which partition each node is in, which devices each partition is on) and what follows from it.

Memory is counted as torch's `Partition.recalculate_mem_size` counts it: every node's total
bytes, every aux node (placeholder, constant) read in the partition once, and for every node
the output bytes of each distinct input that lives in another partition (the buffer that
receives it). A device holds the sum of its partitions::

    placement = Placement(partition_of=(0, 0, 1), devices=((0,), (1,)))
    partition_memory(problem, placement)     # [bytes of partition 0, bytes of partition 1]
    check_placement(problem, placement)      # raises InvalidPlacement naming what is wrong
    placement = canonical(problem, placement)  # ids 0..k-1 in topological order of partitions
"""

from __future__ import annotations

from dataclasses import dataclass
from heapq import heapify, heappop, heappush

from fxflow.partitioning.errors import InvalidPlacement
from fxflow.partitioning.problem import Problem


@dataclass(frozen=True)
class Placement:
    """`partition_of[i]`: partition of compute node i; `devices[p]`: device indices (into
    `problem.devices`) that partition p runs on."""

    partition_of: tuple[int, ...]
    devices: tuple[tuple[int, ...], ...]

    @property
    def num_partitions(self) -> int:
        return len(self.devices)

    def members(self) -> list[list[int]]:
        """Compute nodes of each partition, in graph order."""
        out: list[list[int]] = [[] for _ in self.devices]
        for v, p in enumerate(self.partition_of):
            out[p].append(v)
        return out

    def logical_device_ids(self, problem: Problem, p: int) -> list[int]:
        return [problem.devices[d].logical_id for d in self.devices[p]]


@dataclass(frozen=True)
class PartitionGraph:
    """Edges between partitions as torch's `set_parents_and_children` finds them, with the bytes
    torch's `get_comm_latency_between` charges for each: outputs of the parent read in the
    child, plus (torch's accounting) aux nodes both partitions read."""

    parents: tuple[frozenset[int], ...]
    children: tuple[frozenset[int], ...]
    comm_bytes: dict[tuple[int, int], int]


def partition_aux(problem: Problem, placement: Placement) -> list[set[int]]:
    """Aux nodes each partition holds (those its nodes read)."""
    out: list[set[int]] = [set() for _ in placement.devices]
    for v, p in enumerate(placement.partition_of):
        out[p].update(problem.aux_inputs[v])
    return out


def partition_memory(problem: Problem, placement: Placement) -> list[int]:
    """Bytes each partition uses (torch's `used_mem_bytes`)."""
    part = placement.partition_of
    used = [0] * placement.num_partitions
    for v, p in enumerate(part):
        used[p] += problem.size_bytes[v] + sum(problem.output_bytes[u] for u in problem.inputs[v] if part[u] != p)
    for p, auxes in enumerate(partition_aux(problem, placement)):
        used[p] += sum(problem.aux_bytes[a] for a in auxes)
    return used


def device_loads(problem: Problem, placement: Placement, memory: list[int] | None = None) -> list[int]:
    """Bytes on each device: the sum of the partitions it runs."""
    memory = partition_memory(problem, placement) if memory is None else memory
    loads = [0] * len(problem.devices)
    for p, devs in enumerate(placement.devices):
        for d in devs:
            loads[d] += memory[p]
    return loads


def partition_graph(problem: Problem, placement: Placement) -> PartitionGraph:
    part = placement.partition_of
    k = placement.num_partitions
    parents: list[set[int]] = [set() for _ in range(k)]
    children: list[set[int]] = [set() for _ in range(k)]
    comm: dict[tuple[int, int], int] = {}
    for u, users in enumerate(problem.users):
        q = part[u]
        for p in {part[v] for v in users} - {q}:
            children[q].add(p)
            parents[p].add(q)
            comm[q, p] = comm.get((q, p), 0) + problem.output_bytes[u]
    if comm and problem.aux_names:
        aux = partition_aux(problem, placement)
        for (q, p) in comm:
            comm[q, p] += sum(problem.aux_bytes[a] for a in aux[q] & aux[p])
    return PartitionGraph(tuple(map(frozenset, parents)), tuple(map(frozenset, children)), comm)


def topological_partitions(graph: PartitionGraph, first_node: list[int]) -> list[int] | None:
    """Partitions in a topological order (ties broken by their first node); None if there is a cycle."""
    k = len(graph.parents)
    indegree = [len(ps) for ps in graph.parents]
    ready = [(first_node[p], p) for p in range(k) if indegree[p] == 0]
    heapify(ready)
    order = []
    while ready:
        _, p = heappop(ready)
        order.append(p)
        for c in graph.children[p]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heappush(ready, (first_node[c], c))
    return order if len(order) == k else None


def check_placement(problem: Problem, placement: Placement) -> None:
    """Raise `InvalidPlacement` unless every node is in a partition, every partition holds a node and
    runs on a device, no device is over budget and the partitions form no cycle."""
    problems = []
    k = placement.num_partitions
    if len(placement.partition_of) != problem.num_nodes:
        raise InvalidPlacement(f"placement covers {len(placement.partition_of)} nodes, the graph has {problem.num_nodes}")
    bad = [problem.names[v] for v, p in enumerate(placement.partition_of) if not 0 <= p < k]
    if bad:
        raise InvalidPlacement(f"nodes in no partition: {bad[:10]}")
    members = placement.members()
    problems += [f"partition {p} holds no node" for p in range(k) if not members[p]]
    problems += [f"partition {p} runs on no device" for p in range(k) if not placement.devices[p]]
    for p, devs in enumerate(placement.devices):
        if any(not 0 <= d < len(problem.devices) for d in devs) or len(set(devs)) != len(devs):
            problems.append(f"partition {p} names devices {devs}, not distinct indices into the device list")
    if not problems:
        for d, load in enumerate(device_loads(problem, placement)):
            dev = problem.devices[d]
            if load > dev.mem_bytes:
                problems.append(f"device {dev.name} holds {load} B, over its {dev.mem_bytes} B by {load - dev.mem_bytes} B")
        first = [m[0] if m else 0 for m in members]
        if topological_partitions(partition_graph(problem, placement), first) is None:
            problems.append("the partitions depend on each other in a cycle")
    if problems:
        raise InvalidPlacement("; ".join(problems))


def canonical(problem: Problem, placement: Placement) -> Placement:
    """Drop empty partitions and number the rest 0..k-1 in a topological order of the partitions
    (ties by first node), so that ids read in data-flow order. Raises on a cycle."""
    members = placement.members()
    keep = [p for p in range(placement.num_partitions) if members[p]]
    renumber = {p: i for i, p in enumerate(keep)}
    compact = Placement(tuple(renumber[p] for p in placement.partition_of), tuple(placement.devices[p] for p in keep))
    order = topological_partitions(partition_graph(problem, compact), [members[p][0] for p in keep])
    if order is None:
        raise InvalidPlacement("the partitions depend on each other in a cycle")
    new_id = {p: i for i, p in enumerate(order)}
    return Placement(tuple(new_id[p] for p in compact.partition_of), tuple(compact.devices[p] for p in order))


def split_components(problem: Problem, placement: Placement) -> Placement:
    """Each partition cut into the pieces that exchange no data inside it (weakly connected
    components of its nodes, kept together where they read the same placeholder or constant).

    The pieces stay on their partition's devices, so memory does not change (no data and no aux
    node is shared between them), the partitions stay acyclic (a path from one piece to another
    would have been a cycle before), and neither the critical path nor any stage gets longer: a
    piece's longest path is at most its partition's, and it receives a subset of its inputs.
    They get shorter where independent branches shared a partition only to wait for each other.
    """
    parent = list(range(problem.num_nodes))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    part = placement.partition_of
    for v, preds in enumerate(problem.inputs):
        for u in preds:
            if part[u] == part[v]:
                parent[find(u)] = find(v)
    readers: dict[tuple[int, int], int] = {}
    for v, auxes in enumerate(problem.aux_inputs):
        for a in auxes:
            first = readers.setdefault((a, part[v]), v)
            parent[find(first)] = find(v)
    piece: dict[int, int] = {}
    partition_of, devices = [], []
    for v in range(problem.num_nodes):
        root = find(v)
        if root not in piece:
            piece[root] = len(devices)
            devices.append(placement.devices[part[v]])
        partition_of.append(piece[root])
    return canonical(problem, Placement(tuple(partition_of), tuple(devices)))
