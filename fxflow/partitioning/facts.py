"""The partition stage's facts as a typed model, and how a split module carries them.

Both backends (torch's Partitioner and fxflow's own) record these facts; the partition report
reads them, and so does a later stage that runs the partitions on separate processes: it gets
them from the split module it receives (`partition_facts_of`), never from the partitioner.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from torch.fx import GraphModule

_CARRIED = "fxflow.partition_facts"  # the split module's `meta` key; read and written only here


class PartitionEntry(BaseModel):
    """One partition: its nodes, memory, where it sits and which partitions feed it."""

    model_config = ConfigDict(extra="allow")

    id: int
    nodes: list[str]
    compute_nodes: list[str]
    used_mem_bytes: int
    logical_device_ids: list[int]
    devices: list[str]
    parents: list[int]
    children: list[int]
    latency: list[float] | None = None  # mem / compute / overall, with a latency model


class DeviceUse(BaseModel):
    """What one device of the list holds."""

    model_config = ConfigDict(extra="allow")

    logical_id: int
    mem_bytes: int
    partitions: list[int]
    used_bytes: int


class PartitionFacts(BaseModel):
    """`partition.*` in the record: the placement and its figures, whichever backend made it."""

    model_config = ConfigDict(extra="allow")

    backend: Literal["torch", "fxflow"]
    mode: str
    num_partitions: int
    partitions: list[PartitionEntry]
    devices: dict[str, DeviceUse]
    idle_devices: list[str]
    graph_node_count: int
    transfer_rate_bytes_per_sec: float
    critical_path_latency: float | None = None
    critical_path_latency_unavailable: str | None = None
    graph: dict[str, Any] | None = None  # the runner's graph facts of the split module


def carry_partition_facts(split: GraphModule, facts: PartitionFacts) -> None:
    """Make `split` carry its partition facts to the stages after it (they survive pickling)."""
    split.meta[_CARRIED] = facts


def partition_facts_of(module: Any) -> PartitionFacts | None:
    """The partition facts a split module carries; None for any other module."""
    facts = getattr(module, "meta", {}).get(_CARRIED) if isinstance(module, GraphModule) else None
    return facts if isinstance(facts, PartitionFacts) else None
