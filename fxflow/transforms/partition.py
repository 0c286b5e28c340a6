"""Partition a sized graph over the run's device list."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule

from fxflow.partitioning.facts import PartitionFacts, carry_partition_facts, partition_facts_of
from fxflow.partitioning.algorithms import ALGORITHMS
from fxflow.partitioning.cost import OBJECTIVES
from fxflow.partitioning.fxflow_backend import partition_with_fxflow
from fxflow.partitioning.latency import LatencyModel
from fxflow.partitioning.torch_backend import MODES, PartitionRefused, partition_with_torch
from fxflow.partitioning.torch_helpers import torch_latency_figures
from fxflow.stages import GRAPH, PLACED, GraphProperty
from fxflow.transforms.base import StageContext, Transform
from fxflow.transforms.submodules import called_submodules, compute_nodes, original_name, tag_original_names

_LATENCY_MODES = ("cost_aware", "kl_based")


class PartitionOverDevices(Transform):
    """Partition over the device list with torch's accelerator Partitioner (`backend: torch`, the
    default: `mode`, `saturate_host`, aot mappings and `what_if_removed` are its options) or with
    fxflow's own partitioner (`backend: fxflow`: `algorithm` best | pipeline | list_scheduling |
    milp, `objective` latency | throughput, `time_limit_s`). Both take the same device list,
    latency model and transfer rate and record the same facts.

    Usage in a recipe::

        defaults:
          - /transform@transforms.size_nodes: size_nodes
          - /transform@transforms.partition: partition
          - /latency@transforms.partition.latency_model: size_unit
        transforms:
          partition: {mode: cost_aware, transfer_rate_bytes_per_sec: 2}

    The result has one `submod_<id>` child per partition. Facts: `num_partitions`,
    `graph_node_count`, `partitions.<i>.{id,nodes,compute_nodes,used_mem_bytes,
    logical_device_ids,devices,parents,children,latency}`, `critical_path_latency` (with a
    latency model), `devices.<name>.{partitions,used_bytes}`, `idle_devices`; when the
    partitioner refuses, `refusal` says which node or budget did not fit. With
    `torch_latency_helpers: true`, `torch_helpers.{partitions.<i>.latency,critical_path_latency,
    agrees,differences}`: torch's own latency helpers on the same partitions (they walk every
    path: small graphs only), checked against fxflow's figures.

    The returned split module carries the placement as a `PartitionFacts` object
    (`fxflow.partitioning.facts`), so a later stage (running the partitions on separate
    processes) reads it from the module it receives, whichever backend partitioned it. The facts
    are read from that returned module (`placement_facts`): the partition count and node count
    from its graph, the placement from what it carries, checked against the submodules it calls.
    """

    takes: ClassVar = GRAPH
    gives: ClassVar = PLACED
    facts_model: ClassVar = PartitionFacts
    requires: ClassVar = (GraphProperty.NODE_SIZES,)
    invalidates: ClassVar = (GraphProperty.NODE_SIZES,)
    uses_devices: ClassVar[bool] = True
    reads_graph: ClassVar[bool] = True

    backend: Literal["torch", "fxflow"] = "torch"
    mode: Literal[MODES] = "size_based"  # type: ignore[valid-type]
    saturate_host: bool = False
    transfer_rate_bytes_per_sec: float = Field(0.0, ge=0, allow_inf_nan=False)
    latency_model: LatencyModel | None = None
    node_to_partition: dict[str, int] = {}
    partition_to_logical_devices: dict[int, list[int]] = {}
    what_if_removed: list[str] = []
    algorithm: Literal[tuple(ALGORITHMS)] = "best"  # type: ignore[valid-type]
    objective: Literal[OBJECTIVES] = "latency"  # type: ignore[valid-type]
    time_limit_s: float = Field(2.0, gt=0, le=3600)
    torch_latency_helpers: bool = False  # also torch's latency helpers, checked against fxflow's figures

    @model_validator(mode="after")
    def _backend_options(self) -> "PartitionOverDevices":
        torch_only = {"mode": self.mode != "size_based", "saturate_host": self.saturate_host,
                      "node_to_partition": bool(self.node_to_partition),
                      "partition_to_logical_devices": bool(self.partition_to_logical_devices),
                      "what_if_removed": bool(self.what_if_removed)}
        fxflow_only = {"algorithm": self.algorithm != "best", "objective": self.objective != "latency",
                       "time_limit_s": self.time_limit_s != 2.0}
        wrong = [k for k, set_ in (torch_only if self.backend == "fxflow" else fxflow_only).items() if set_]
        if wrong:
            other = "torch" if self.backend == "fxflow" else "fxflow"
            raise PydanticCustomError(
                "backend_option", "{fields} belong to backend={other}, not backend={backend}; "
                "set backend={other} or leave them at their defaults",
                {"fields": ", ".join(wrong), "other": other, "backend": self.backend, "field": wrong[0]})
        return self

    @model_validator(mode="after")
    def _mode_needs(self) -> "PartitionOverDevices":
        if self.mode in _LATENCY_MODES and self.latency_model is None:
            raise PydanticCustomError(
                "latency_model", "mode={mode} needs a latency_model (e.g. fxflow.partitioning.latency.SizeRuleLatency)",
                {"mode": self.mode})
        if self.latency_model is not None and self.transfer_rate_bytes_per_sec == 0:
            raise PydanticCustomError(
                "transfer_rate", "transfer_rate_bytes_per_sec is 0 but a latency_model is set: the latency figures "
                "divide transfer sizes by it; give the link speed in bytes per second (e.g. 2)",
                {"field": "transfer_rate_bytes_per_sec"})
        if self.torch_latency_helpers and self.latency_model is None:
            raise PydanticCustomError(
                "latency_model", "torch_latency_helpers needs a latency_model: torch's helpers compute latencies "
                "from it", {"field": "torch_latency_helpers"})
        aot = bool(self.node_to_partition or self.partition_to_logical_devices)
        if self.mode == "aot_based":
            missing = set(self.node_to_partition.values()) - set(self.partition_to_logical_devices)
            if not self.node_to_partition or missing:
                raise PydanticCustomError(
                    "aot_mapping",
                    "mode=aot_based needs node_to_partition (node name -> partition id) and "
                    "partition_to_logical_devices for every partition id used (missing: {missing})",
                    {"missing": sorted(missing)})
        elif aot:
            raise PydanticCustomError(
                "aot_mapping", "node_to_partition / partition_to_logical_devices are only read when mode=aot_based")
        return self

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        latency = self.latency_model.mapping(gm, ctx.inputs) if self.latency_model else {}
        tag_original_names(gm)  # the partitioners split the graph itself: its nodes' meta goes with them
        try:
            if self.backend == "fxflow":
                split, facts = partition_with_fxflow(
                    gm, ctx.devices, self.algorithm, self.objective,
                    transfer_rate_bytes_per_sec=self.transfer_rate_bytes_per_sec,
                    latency=latency, time_limit_s=self.time_limit_s)
            else:
                split, facts = self._with_torch(gm, ctx, latency)
        except PartitionRefused as exc:
            ctx.facts.update(exc.facts)
            raise
        except KeyError as exc:
            raise KeyError(f"transforms.{ctx.name}.{exc.args[0]}") from None
        placed = {"backend": self.backend, **facts}
        if self.latency_model is not None and self.latency_model.source() is not None:
            placed["latency_source"] = self.latency_model.source()
        if self.torch_latency_helpers:
            placed["torch_helpers"] = torch_latency_figures(gm, placed, latency, self.transfer_rate_bytes_per_sec)
        carry_partition_facts(split, PartitionFacts.model_validate(placed))
        return split

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        return placement_facts(returned)

    def _with_torch(self, gm: GraphModule, ctx: StageContext, latency: dict) -> tuple[GraphModule, dict]:
        return partition_with_torch(
            gm, ctx.devices, self.mode,
            transfer_rate_bytes_per_sec=self.transfer_rate_bytes_per_sec,
            latency=latency,
            node_to_partition=self.node_to_partition,
            partition_to_logical_devices=self.partition_to_logical_devices,
            saturate_host=self.saturate_host,
            what_if_removed=self.what_if_removed,
        )


def placement_facts(split: Any) -> dict[str, Any]:
    """The partition facts of a partitioned module, read from it: how many `submod_<id>` children
    its graph calls, its node count, and the placement it carries (`partition_facts_of(split)`:
    memory, devices, parents, children, latencies), which must describe exactly those children
    (each partition's compute nodes are the ones its submodule holds). A module that calls no
    submodule and carries no placement (the graph a stage was given) has 0 partitions and no
    placement facts."""
    subs = called_submodules(split)
    facts: dict[str, Any] = {"num_partitions": len(subs)}
    if isinstance(split, GraphModule):
        facts["graph_node_count"] = len(split.graph.nodes)
    carried = partition_facts_of(split)
    if carried is None:
        return facts
    placed = carried.model_dump(exclude_unset=True)
    by_name = {f"submod_{entry['id']}": entry for entry in placed["partitions"]}
    if set(by_name) != set(subs):
        raise ValueError(f"the partitioned module calls {sorted(subs)} but its placement describes {sorted(by_name)}")
    for name, entry in by_name.items():
        held = sorted(original_name(node) for node in compute_nodes(subs[name]))
        if held != sorted(entry["compute_nodes"]):
            raise ValueError(f"partition {entry['id']} is placed with nodes {entry['compute_nodes']} but the returned "
                             f"module's {name} computes {held}")
    return {**facts, **{key: copy.deepcopy(value) for key, value in placed.items() if key not in facts}}
