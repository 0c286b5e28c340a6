"""Which process computes each value of a split module, and which values cross between processes.

A split module (torch's Partitioner `module_with_submodules`, or `torch.fx.passes.split_module`)
is a top-level graph that calls `submod_<partition id>` children in topological order and picks
items out of their tuple outputs with `getitem`. `build_plan` reads that graph once and gives
every node a home rank:

- placeholders, the output and any other top-level glue (`torch.cat`, method calls) live on
  the driver, rank 0, which holds the request's inputs and assembles the result;
- `submod_<pid>` calls live on the rank their placement names;
- a `getitem` lives where the value it indexes lives, so only the selected item crosses;
- `get_attr` constants are copied once, at start-up, to every rank that reads them.

A value crosses from its home to every other rank that reads it; those crossings are the
`edges` that a run sends point to point and measures::

    plan = build_plan(split, placement_from_facts(facts["partitions"]))
    [(e.value, e.src_rank, e.dst_rank) for e in plan.edges]
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx
import torch
from torch.fx import GraphModule, Node

from fxflow.config.renamed import renamed

DRIVER = 0
CONSTANT = -1  # home of get_attr values: copied to their readers at start-up
_SUBMOD = re.compile(r"submod_(\d+)")


@dataclass(frozen=True)
class Slot:
    """Where one partition runs: a worker rank (1..W; rank 0 is the driver) and its torch device."""

    rank: int
    device: str = "cpu"
    device_name: str | None = None  # the device list's name for it (dev_0), if known


@dataclass(frozen=True)
class SlotAssignment:
    """Partition id -> Slot, plus the candidate devices of partitions replicated on several."""

    slots: dict[int, Slot]
    replicated: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, value: "SlotAssignment | Mapping[int, Slot | tuple[int, str] | Mapping[str, Any]]") -> "SlotAssignment":
        """Accept a SlotAssignment, or a mapping pid -> Slot / (rank, device) / {"rank", "device"}."""
        if isinstance(value, SlotAssignment):
            placement = value
        else:
            slots = {}
            for pid, slot in value.items():
                if isinstance(slot, Slot):
                    slots[int(pid)] = slot
                elif isinstance(slot, Mapping):
                    slots[int(pid)] = Slot(int(slot["rank"]), str(slot.get("device", "cpu")), slot.get("device_name"))
                else:
                    rank, device = slot
                    slots[int(pid)] = Slot(int(rank), str(device))
            placement = cls(slots)
        placement.rank_devices()  # validates
        return placement

    def rank_devices(self) -> dict[int, str]:
        """Worker rank -> torch device; refuses gaps in the ranks and a rank with two devices."""
        devices: dict[int, str] = {}
        for pid, slot in sorted(self.slots.items()):
            if slot.rank < 1:
                raise ValueError(f"partition {pid}: worker ranks start at 1 (rank {DRIVER} is the driver), got {slot.rank}")
            torch.device(slot.device)  # raises on a malformed device string
            if devices.setdefault(slot.rank, slot.device) != slot.device:
                raise ValueError(f"rank {slot.rank} is given two devices: {devices[slot.rank]} and {slot.device} (partition {pid})")
        if sorted(devices) != list(range(1, len(devices) + 1)):
            raise ValueError(f"worker ranks must be 1..{len(devices)} without gaps, got {sorted(devices)}")
        return dict(sorted(devices.items()))

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "id": pid,
                "rank": slot.rank,
                "device": slot.device,
                "device_name": slot.device_name,
                "replicated_on": list(self.replicated.get(pid, ())),
            }
            for pid, slot in sorted(self.slots.items())
        ]


def placement_from_facts(partitions: Sequence[Mapping[str, Any]], torch_devices: Mapping[str, str] | None = None) -> SlotAssignment:
    """One worker per device name that holds a partition, from the Partition transform's facts.

    `partitions` is `facts["partitions"]` (entries with `id`, `devices`, `logical_device_ids`,
    `parents`, `children`); `torch_devices` maps a device name to a torch device string
    (`{"dev_0": "cuda:0"}`), "cpu" where absent. A partition replicated on several devices runs
    on the one that already hosts most of its parents and children (the first on a tie), and
    `SlotAssignment.replicated` keeps every candidate. Ranks follow the devices' logical ids.
    """
    torch_devices = dict(torch_devices or {})
    candidates: dict[int, list[str]] = {}
    logical: dict[str, int] = {}
    neighbours: dict[int, list[int]] = {}
    for entry in partitions:
        pid = int(entry["id"])
        ids = list(entry.get("logical_device_ids", []))
        names = list(entry.get("devices") or [f"logical_{i}" for i in ids])
        if not names:
            raise ValueError(f"partition {pid} is on no device; the partitioner placed nothing")
        for lid, name in zip(ids, names):
            logical.setdefault(name, lid)
        candidates[pid] = names
        neighbours[pid] = [*entry.get("parents", []), *entry.get("children", [])]
    chosen = {pid: names[0] for pid, names in candidates.items() if len(names) == 1}
    for pid in sorted(set(candidates) - set(chosen)):
        hosted = [chosen.get(n) for n in neighbours[pid]]
        chosen[pid] = max(candidates[pid], key=lambda name: (hosted.count(name), -candidates[pid].index(name)))
    order = sorted(set(chosen.values()), key=lambda name: (logical.get(name, 1 << 30), name))
    rank_of = {name: rank for rank, name in enumerate(order, start=1)}
    slots = {pid: Slot(rank_of[name], torch_devices.get(name, "cpu"), name) for pid, name in sorted(chosen.items())}
    replicated = {pid: tuple(names) for pid, names in candidates.items() if len(names) > 1}
    return SlotAssignment.of(SlotAssignment(slots, replicated))


@dataclass(frozen=True)
class Ref:
    """A step argument that is the value of another top-level node."""

    name: str


@dataclass
class Step:
    """One top-level node: what it computes, where, and which other ranks read its value."""

    name: str
    op: str
    target: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    home: int
    send_to: tuple[int, ...] = ()
    partition: int | None = None  # for `submod_<pid>` calls
    default: Any = None  # placeholder default, if any
    has_default: bool = False


@dataclass(frozen=True)
class Edge:
    """A value that crosses from one rank to another on every request."""

    value: str
    src_rank: int
    dst_rank: int
    sources: tuple[Any, ...]  # partitions (or "input") the value comes from
    consumers: tuple[Any, ...]  # partitions (or "output") that read it on dst_rank


@dataclass
class Plan:
    """The data flow of a split module over ranks 0 (driver) .. W (workers)."""

    steps: list[Step]
    devices: dict[int, str]  # rank -> torch device string; rank 0 is the driver on cpu
    device_names: dict[int, str | None]
    constant_readers: dict[str, tuple[int, ...]]  # get_attr node name -> ranks that read it
    constant_targets: dict[str, str]  # get_attr node name -> attribute path in the split module
    edges: list[Edge]
    partition_dag: nx.DiGraph  # nodes: partition ids, "input", "output"; edge attr `values`

    @property
    def world_size(self) -> int:
        return len(self.devices)

    @property
    def inputs(self) -> list[Step]:
        return [s for s in self.steps if s.op == "placeholder"]

    def partitions_of(self, rank: int) -> list[int]:
        return sorted(s.partition for s in self.steps if s.home == rank and s.partition is not None)

    def is_chain(self) -> bool:
        """Partitions form one path p1 -> p2 -> ... -> pk (inputs and output aside)."""
        dag = self.partition_dag.subgraph([n for n in self.partition_dag if isinstance(n, int)])
        if dag.number_of_nodes() == 0:
            return False
        return (
            nx.is_weakly_connected(dag)
            and all(d <= 1 for _, d in dag.in_degree())
            and all(d <= 1 for _, d in dag.out_degree())
            and nx.is_directed_acyclic_graph(dag)
        )

    def describe(self) -> dict[str, Any]:
        """JSON facts: ranks, steps per rank, crossing edges, partition DAG."""
        return {
            "world_size": self.world_size,
            "ranks": [
                {
                    "rank": rank,
                    "role": "driver" if rank == DRIVER else "worker",
                    "device": device,
                    "device_name": self.device_names.get(rank),
                    "partitions": self.partitions_of(rank),
                }
                for rank, device in self.devices.items()
            ],
            "edges": [
                {"value": e.value, "src_rank": e.src_rank, "dst_rank": e.dst_rank,
                 "from": list(e.sources), "to": list(e.consumers)}
                for e in self.edges
            ],
            "partition_dag": [[u, v] for u, v in self.partition_dag.edges],
            "chain": self.is_chain(),
        }


def build_plan(split: GraphModule, placement: SlotAssignment | Mapping[int, Any]) -> Plan:
    """Home rank of every top-level node of `split`, and the values that cross ranks."""
    placement = SlotAssignment.of(placement)
    worker_devices = placement.rank_devices()
    submods = {name: int(m.group(1)) for name, _ in split.named_children() if (m := _SUBMOD.fullmatch(name))}
    unplaced = sorted(set(submods.values()) - set(placement.slots))
    if unplaced:
        raise ValueError(f"no placement for partitions {unplaced} (submodules {', '.join(f'submod_{p}' for p in unplaced)})")
    unused = sorted(set(placement.slots) - set(submods.values()))
    if unused:
        raise ValueError(f"placement names partitions {unused} that the split module lacks (it has {sorted(submods.values())})")

    home: dict[Node, int] = {}
    steps: list[Step] = []
    by_name: dict[str, Step] = {}
    for node in split.graph.nodes:
        partition = None
        if node.op == "get_attr":
            home[node] = CONSTANT
            continue
        if node.op == "call_module" and node.target in submods:
            partition = submods[node.target]
            home[node] = placement.slots[partition].rank
        elif node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], Node) and home[node.args[0]] != CONSTANT:
            home[node] = home[node.args[0]]
        else:
            home[node] = DRIVER
        step = Step(
            name=node.name,
            op=node.op,
            target=node.target,
            args=map_values(node.args, lambda n: Ref(n.name), Node),
            kwargs=map_values(node.kwargs, lambda n: Ref(n.name), Node),
            home=home[node],
            partition=partition,
        )
        if node.op == "placeholder":
            step.args, step.has_default = (), bool(node.args)
            step.default = node.args[0] if node.args else None
        steps.append(step)
        by_name[node.name] = step

    readers: dict[str, set[int]] = {}
    for node in split.graph.nodes:
        users = {home[u] for u in node.users}
        if home[node] == CONSTANT:
            readers[node.name] = users
        elif node.name in by_name:
            by_name[node.name].send_to = tuple(sorted(users - {home[node]}))

    sources = _sources(split, submods)
    downstream = _downstream(split, submods)
    dag = nx.DiGraph()
    dag.add_nodes_from(sorted(submods.values()))
    edges = []
    for node in split.graph.nodes:
        if node.op == "call_module" and node.target in submods or node.op == "output":
            target = submods[node.target] if node.op == "call_module" else "output"
            for arg in node.all_input_nodes:
                for src in sources[arg]:
                    if not dag.has_edge(src, target):
                        dag.add_edge(src, target, values=[])
                    dag.edges[src, target]["values"].append(arg.name)
        step = by_name.get(node.name)
        for dst in step.send_to if step else ():
            consumers = sorted({c for u in node.users if home[u] == dst for c in downstream[u]}, key=str)
            edges.append(Edge(node.name, step.home, dst, tuple(sorted(sources[node], key=str)), tuple(consumers)))

    devices = {DRIVER: "cpu", **worker_devices}
    names = {DRIVER: None, **{s.rank: s.device_name for s in placement.slots.values()}}
    return Plan(
        steps=steps,
        devices=devices,
        device_names=names,
        constant_readers={k: tuple(sorted(v)) for k, v in readers.items()},
        constant_targets={n.name: n.target for n in split.graph.nodes if n.op == "get_attr"},
        edges=edges,
        partition_dag=dag,
    )


def map_values(tree: Any, fn: Callable[[Any], Any], kind: type) -> Any:
    """Apply `fn` to every `kind` leaf of nested tuples, lists, dicts and slices; plain containers out
    (fx's own map_arg returns fx's immutable containers, which would leak into outputs)."""
    if isinstance(tree, kind):
        return fn(tree)
    if isinstance(tree, tuple):
        items = [map_values(v, fn, kind) for v in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, list):
        return [map_values(v, fn, kind) for v in tree]
    if isinstance(tree, dict):
        return {k: map_values(v, fn, kind) for k, v in tree.items()}
    if isinstance(tree, slice):
        return slice(map_values(tree.start, fn, kind), map_values(tree.stop, fn, kind), map_values(tree.step, fn, kind))
    return tree


def _sources(split: GraphModule, submods: dict[str, int]) -> dict[Node, set[Any]]:
    """Partitions (or "input") whose outputs each top-level value is made from."""
    sources: dict[Node, set[Any]] = {}
    for node in split.graph.nodes:
        if node.op == "placeholder":
            sources[node] = {"input"}
        elif node.op == "call_module" and node.target in submods:
            sources[node] = {submods[node.target]}
        else:
            sources[node] = set().union(*(sources[a] for a in node.all_input_nodes)) if node.all_input_nodes else set()
    return sources


def _downstream(split: GraphModule, submods: dict[str, int]) -> dict[Node, set[Any]]:
    """Partitions (or "output") that each top-level value flows into, through glue nodes."""
    reach: dict[Node, set[Any]] = {}
    for node in reversed(split.graph.nodes):
        if node.op == "call_module" and node.target in submods:
            reach[node] = {submods[node.target]}
        elif node.op == "output":
            reach[node] = {"output"}
        else:
            reach[node] = set().union(*(reach[u] for u in node.users)) if node.users else set()
    return reach


# `Placement` was renamed `SlotAssignment` (fxflow.partitioning's Placement is the node
# placement); the old name works for one release.
__getattr__ = renamed(__name__, Placement=SlotAssignment)
