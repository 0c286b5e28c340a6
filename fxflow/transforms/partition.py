"""Partition a graph over the configured devices with torch's accelerator Partitioner."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.experimental.accelerator_partitioner import Partitioner
from torch.fx.experimental.partitioner_utils import (
    Device,
    Partition as TorchPartition,
    PartitionerConfig,
    PartitionMode,
    get_latency_of_partitioned_graph,
    get_partition_to_latency_mapping,
)

from fxflow.transforms.base import NON_COMPUTE_OPS, StageContext, Transform
from fxflow.transforms.latency import LatencyModel

MODES = ("size_based", "sparse_nn", "cost_aware", "kl_based", "aot_based")
_LATENCY_MODES = ("cost_aware", "kl_based")


class PartitionRefused(RuntimeError):
    """torch's Partitioner refused the device list; the message says which node or budget."""


class Partition(Transform):
    """torch's `Partitioner.partition_graph` driven from config.

    Usage in a recipe::

        transforms:
          size_nodes: {_target_: fxflow.transforms.SizeNodes}
          partition:
            _target_: fxflow.transforms.Partition
            mode: cost_aware
            transfer_rate_bytes_per_sec: 2
            latency_model: {_target_: fxflow.transforms.latency.SizeRuleLatency, unweighted_per_byte: 0, unweighted_constant: 1}

    The result is torch's `module_with_submodules` (one `submod_i` per partition). Facts:
    `num_partitions`, `graph_node_count`, `partitions.<i>.{id,nodes,used_mem_bytes,
    logical_device_ids,devices,parents,children,latency}`, `critical_path_latency` (with a
    latency model), `devices.<name>.{partitions,used_bytes}`, `idle_devices`; when torch
    refuses, `refusal` says which node or budget did not fit.
    """

    requires: ClassVar[tuple[str, ...]] = ("node_sizes",)
    provides: ClassVar[tuple[str, ...]] = ("partitions",)
    invalidates: ClassVar[tuple[str, ...]] = ("node_sizes",)
    uses_devices: ClassVar[bool] = True

    mode: Literal[MODES] = "size_based"  # type: ignore[valid-type]
    saturate_host: bool = False
    transfer_rate_bytes_per_sec: float = Field(0.0, ge=0)
    latency_model: LatencyModel | None = None
    node_to_partition: dict[str, int] = {}
    partition_to_logical_devices: dict[int, list[int]] = {}
    what_if_removed: list[str] = []
    picture: bool = True

    @model_validator(mode="after")
    def _mode_needs(self) -> "Partition":
        if self.mode in _LATENCY_MODES and self.latency_model is None:
            raise PydanticCustomError(
                "latency_model", "mode={mode} needs a latency_model (e.g. fxflow.transforms.latency.SizeRuleLatency)",
                {"mode": self.mode},
            )
        aot = bool(self.node_to_partition or self.partition_to_logical_devices)
        if self.mode == "aot_based":
            missing = set(self.node_to_partition.values()) - set(self.partition_to_logical_devices)
            if not self.node_to_partition or missing:
                raise PydanticCustomError(
                    "aot_mapping",
                    "mode=aot_based needs node_to_partition (node name -> partition id) and "
                    "partition_to_logical_devices for every partition id used (missing: {missing})",
                    {"missing": sorted(missing)},
                )
        elif aot:
            raise PydanticCustomError(
                "aot_mapping", "node_to_partition / partition_to_logical_devices are only read when mode=aot_based"
            )
        return self

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        devices = [Device(d.name, d.mem_bytes, d.logical_id) for d in ctx.devices]
        latency = self.latency_model.mapping(gm, ctx.inputs) if self.latency_model else {}
        config = PartitionerConfig(
            devices,
            mode=PartitionMode[self.mode],
            transfer_rate_bytes_per_sec=self.transfer_rate_bytes_per_sec,
            node_to_latency_mapping=latency,
            node_to_partition_mapping=self._nodes_by_name(gm, self.node_to_partition, ctx.name),
            partition_to_logical_device_mapping=dict(self.partition_to_logical_devices),
            saturate_host=self.saturate_host,
        )
        partitioner = Partitioner()
        try:
            result = partitioner.partition_graph(gm, gm, config)
        except RuntimeError as exc:
            ctx.facts["refusal"] = explain_refusal(gm, ctx.devices, str(exc))
            raise PartitionRefused(
                f"torch's Partitioner ({self.mode} mode) refused: {ctx.facts['refusal']['explanation']}"
            ) from exc

        split = result.module_with_submodules
        partitions = partitioner.partitions
        ctx.facts.update(describe_partitions(partitions, ctx.devices, self.mode))
        ctx.facts["graph_node_count"] = len(split.graph.nodes)
        ctx.facts["transfer_rate_bytes_per_sec"] = self.transfer_rate_bytes_per_sec
        if latency:
            per_partition = get_partition_to_latency_mapping(partitions, latency)
            for entry, part in zip(ctx.facts["partitions"], partitions):
                entry["latency"] = [float(v) for v in per_partition[part]]
            ctx.facts["critical_path_latency"] = float(
                get_latency_of_partitioned_graph(partitions, per_partition, self.transfer_rate_bytes_per_sec)
            )
        if self.what_if_removed:
            ctx.facts["what_if_removed"] = self._what_if_removed(partitions, ctx.name)

        from fxflow.reports.partition import write_partition_report

        write_partition_report(ctx.record, ctx.name, ctx.facts, gm, partitions, self.picture)
        return split

    def report(self, facts: dict[str, Any]) -> list[Any]:
        from fxflow.reports.partition import partition_renderables

        return partition_renderables(facts)

    @staticmethod
    def _nodes_by_name(gm: GraphModule, by_name: dict[str, int], stage: str) -> dict:
        nodes = {n.name: n for n in gm.graph.nodes}
        unknown = sorted(set(by_name) - set(nodes))
        if unknown:
            raise KeyError(
                f"transforms.{stage}.node_to_partition names nodes that the traced graph lacks: {unknown}; "
                f"graph nodes: {', '.join(n for n, v in nodes.items() if v.op not in NON_COMPUTE_OPS)}"
            )
        return {nodes[name]: pid for name, pid in by_name.items()}

    def _what_if_removed(self, partitions: list[TorchPartition], stage: str) -> dict[str, Any]:
        """Memory a partition would use without each named node (torch's Partition.remove_node), then restore it."""
        out = {}
        for name in self.what_if_removed:
            owner = next((p for p in partitions for n in p.nodes if n.name == name), None)
            if owner is None:
                raise KeyError(f"transforms.{stage}.what_if_removed: no partition holds a node named '{name}'")
            node = next(n for n in owner.nodes if n.name == name)
            before = owner.used_mem_bytes
            owner.remove_node(node)
            after = owner.used_mem_bytes
            owner.add_node(node)
            out[name] = {"partition": owner.partition_id, "used_mem_bytes_before": before, "used_mem_bytes_after": after}
        return out


def describe_partitions(partitions: list[TorchPartition], devices: list, mode: str) -> dict[str, Any]:
    """JSON facts about torch's partitions and how they land on the devices."""
    by_logical = {}
    for d in devices:
        by_logical.setdefault(d.logical_id, []).append(d)
    entries = []
    for p in partitions:
        placed = [d.name for lid in p.logical_device_ids for d in by_logical.get(lid, [])[:1]]
        entries.append(
            {
                "id": p.partition_id,
                "nodes": sorted(n.name for n in p.nodes),
                "compute_nodes": sorted(n.name for n in p.nodes if n.op not in NON_COMPUTE_OPS),
                "used_mem_bytes": int(p.used_mem_bytes),
                "logical_device_ids": list(p.logical_device_ids),
                "devices": placed,
                "parents": sorted(q.partition_id for q in p.parents),
                "children": sorted(q.partition_id for q in p.children),
            }
        )
    device_use = {}
    for d in devices:
        hosted = [e["id"] for e in entries if d.logical_id in e["logical_device_ids"] and d.name in e["devices"]]
        used = sum(e["used_mem_bytes"] for e in entries if e["id"] in hosted)
        device_use[d.name] = {"logical_id": d.logical_id, "mem_bytes": d.mem_bytes, "partitions": hosted, "used_bytes": used}
    return {
        "mode": mode,
        "num_partitions": len(entries),
        "partitions": entries,
        "devices": device_use,
        "idle_devices": [name for name, use in device_use.items() if not use["partitions"]],
    }


def explain_refusal(gm: GraphModule, devices: list, reason: str) -> dict[str, Any]:
    """Say in words which node or which budget did not fit, from torch's terse reason."""
    sized = [n for n in gm.graph.nodes if getattr(n, "size_bytes", None) is not None]
    largest = max(sized, key=lambda n: n.size_bytes.total_size, default=None)
    total = sum(n.size_bytes.total_size for n in sized)
    budgets = ", ".join(f"{d.name} {d.mem_bytes} B" for d in devices) or "none"
    biggest = max(devices, key=lambda d: d.mem_bytes, default=None)
    facts: dict[str, Any] = {"reason": reason, "module_bytes": total, "device_budgets": {d.name: d.mem_bytes for d in devices}}
    if largest is not None:
        facts["largest_node"] = {"name": largest.name, "total_bytes": largest.size_bytes.total_size}
    if not devices:
        text = "the device list is empty"
    elif "same memory size" in reason:
        text = f"this mode needs devices of equal memory, but the budgets differ: {budgets}"
    elif largest is not None and biggest is not None and largest.size_bytes.total_size > biggest.mem_bytes:
        text = (
            f"node '{largest.name}' needs {largest.size_bytes.total_size} B but the largest device "
            f"({biggest.name}) has {biggest.mem_bytes} B"
        )
    elif "enough memory" in reason:
        text = (
            f"the module needs {total} B in all but the devices offer {budgets} "
            f"({sum(d.mem_bytes for d in devices)} B together)"
        )
    else:
        text = f"device budgets {budgets}; module {total} B"
    facts["explanation"] = f"{text} [torch: {reason}]"
    return facts
