"""What a partitioner needs to know about a graph and the devices, as plain numbers.

A `Problem` is built once from a sized torch.fx GraphModule (see `build_problem`) and then
read by the cost model and every algorithm without touching torch again::

    problem = build_problem(gm, latency_mapping, devices, transfer_rate_bytes_per_sec=2)
    problem.num_nodes, problem.inputs[i], problem.size_bytes[i], problem.weight(i)

Compute nodes (`call_module`, `call_function`, `call_method`) are numbered in graph order,
which is a topological order. Placeholders and `get_attr` constants are "aux" nodes: they
compute nothing, but torch's Partitioner copies each one into every partition that reads it
and counts its bytes there (`Partition.add_node`), and so do we.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from torch.fx import GraphModule, Node

AUX_OPS = frozenset({"placeholder", "get_attr"})


@dataclass(frozen=True)
class Device:
    """One logical device: a name, a memory budget in bytes, torch's logical id."""

    name: str
    mem_bytes: int
    logical_id: int

    @classmethod
    def of(cls, spec: Any) -> "Device":
        """From torch's `Device` (available_mem_bytes), fxflow's `DeviceSpec` (mem_bytes) or ourselves."""
        mem = getattr(spec, "mem_bytes", None)
        if mem is None:
            mem = spec.available_mem_bytes
        return cls(str(spec.name), int(mem), int(spec.logical_id))


@dataclass(frozen=True)
class Problem:
    """A sized compute graph, its node latencies and the devices it may be placed on.

    Per compute node i (graph order): `names[i]`, `size_bytes[i]` (output plus weights, torch's
    `size_bytes.total_size`), `output_bytes[i]`, `mem_latency[i]`, `compute_latency[i]`,
    `inputs[i]` (distinct compute producers, argument order) and `aux_inputs[i]` (distinct
    aux nodes read). Per aux node j: `aux_names[j]`, `aux_bytes[j]`.
    """

    names: tuple[str, ...]
    size_bytes: tuple[int, ...]
    output_bytes: tuple[int, ...]
    mem_latency: tuple[float, ...]
    compute_latency: tuple[float, ...]
    inputs: tuple[tuple[int, ...], ...]
    aux_inputs: tuple[tuple[int, ...], ...]
    aux_names: tuple[str, ...]
    aux_bytes: tuple[int, ...]
    devices: tuple[Device, ...]
    transfer_rate_bytes_per_sec: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.names)
        for label, column in (("size_bytes", self.size_bytes), ("output_bytes", self.output_bytes),
                              ("mem_latency", self.mem_latency), ("compute_latency", self.compute_latency),
                              ("inputs", self.inputs), ("aux_inputs", self.aux_inputs)):
            if len(column) != n:
                raise ValueError(f"{label} has {len(column)} entries for {n} nodes")
        for i, preds in enumerate(self.inputs):
            if any(not 0 <= u < i for u in preds) or len(set(preds)) != len(preds):
                raise ValueError(f"node {self.names[i]}: inputs {preds} must be distinct earlier nodes (graph order)")
        for i, (m, c) in enumerate(zip(self.mem_latency, self.compute_latency)):
            if not (math.isfinite(m) and math.isfinite(c) and m >= 0 and c >= 0):
                raise ValueError(f"node {self.names[i]}: latency ({m}, {c}) must be finite and non-negative")
        if any(s < 0 for s in self.size_bytes) or any(o < 0 for o in self.output_bytes) or any(a < 0 for a in self.aux_bytes):
            raise ValueError("byte sizes must be non-negative")
        if self.transfer_rate_bytes_per_sec < 0:
            raise ValueError("transfer_rate_bytes_per_sec must be >= 0")
        if len({d.name for d in self.devices}) != len(self.devices):
            raise ValueError(f"device names must be unique: {[d.name for d in self.devices]}")

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    def weight(self, i: int) -> float:
        """A node's share of a path: max(compute, mem) latency, as torch's latency walk adds it."""
        return max(self.compute_latency[i], self.mem_latency[i])

    @cached_property
    def weights(self) -> tuple[float, ...]:
        return tuple(max(c, m) for c, m in zip(self.compute_latency, self.mem_latency))

    @cached_property
    def users(self) -> tuple[tuple[int, ...], ...]:
        """Compute consumers of each compute node, in graph order."""
        out: list[list[int]] = [[] for _ in self.names]
        for v, preds in enumerate(self.inputs):
            for u in preds:
                out[u].append(v)
        return tuple(tuple(u) for u in out)

    @cached_property
    def aux_users(self) -> tuple[tuple[int, ...], ...]:
        """Compute consumers of each aux node, in graph order."""
        out: list[list[int]] = [[] for _ in self.aux_names]
        for v, auxes in enumerate(self.aux_inputs):
            for a in auxes:
                out[a].append(v)
        return tuple(tuple(u) for u in out)

    def edges(self) -> Iterator[tuple[int, int, int]]:
        """Data edges (producer, consumer, bytes moved if they sit apart = the producer's output bytes)."""
        for v, preds in enumerate(self.inputs):
            for u in preds:
                yield u, v, self.output_bytes[u]

    @cached_property
    def min_bytes(self) -> int:
        """Bytes any placement must hold: every node once and every aux node read by some node once."""
        return sum(self.size_bytes) + sum(b for b, users in zip(self.aux_bytes, self.aux_users) if users)


def build_problem(
    gm: "GraphModule",
    latency: Mapping["Node", Any] | None,
    devices: Sequence[Any],
    transfer_rate_bytes_per_sec: float = 0.0,
) -> Problem:
    """The `Problem` of a GraphModule whose nodes carry `node.size_bytes`.

    `latency` maps each compute node to torch's `NodeLatency(mem_latency_sec,
    computer_latency_sec)` (the mapping torch's cost-aware modes take); None means all zero.
    `devices` are torch `Device`s, fxflow `DeviceSpec`s or `Device`s.
    """
    from torch.fx.node import map_arg

    index: dict[Any, int] = {}
    aux_index: dict[Any, int] = {}
    names, sizes, outputs, mems, computes, inputs, aux_inputs = [], [], [], [], [], [], []
    aux_names, aux_bytes = [], []

    def size_of(node: Any) -> Any:
        size = getattr(node, "size_bytes", None)
        if size is None:
            raise ValueError(f"node '{node.name}' has no size_bytes: size the graph first (fxflow.partitioning.size_nodes)")
        return size

    seen_output = False
    for node in gm.graph.nodes:
        if node.op == "output":
            seen_output = True
            continue
        if seen_output:
            raise ValueError(f"node '{node.name}' comes after the graph's output")
        if node.op in AUX_OPS:
            aux_index[node] = len(aux_names)
            aux_names.append(node.name)
            aux_bytes.append(int(size_of(node).total_size))
            continue
        read: dict[Any, None] = {}
        map_arg(node.args, read.setdefault)
        map_arg(node.kwargs, read.setdefault)
        size = size_of(node)
        index[node] = len(names)
        names.append(node.name)
        sizes.append(int(size.total_size))
        outputs.append(int(size.output_size))
        inputs.append(tuple(index[n] for n in read if n in index))
        aux_inputs.append(tuple(aux_index[n] for n in read if n in aux_index))
        if latency is None:
            mems.append(0.0)
            computes.append(0.0)
        else:
            if node not in latency:
                raise KeyError(f"the latency mapping has no entry for compute node '{node.name}'")
            entry = latency[node]
            mems.append(float(entry.mem_latency_sec))
            computes.append(float(entry.computer_latency_sec))
    return Problem(
        tuple(names), tuple(sizes), tuple(outputs), tuple(mems), tuple(computes), tuple(inputs), tuple(aux_inputs),
        tuple(aux_names), tuple(aux_bytes), tuple(Device.of(d) for d in devices), float(transfer_rate_bytes_per_sec),
    )
