"""Latency models: how long each node takes, for cost-aware partitioning and critical-path figures.

Each model maps the sized nodes of a graph to torch's `NodeLatency(mem_latency_sec,
computer_latency_sec)`. Units are whatever the model says; torch's tests use bytes
as seconds, and the figures they assert (208.0, 160.0) come out of those rules.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from torch.fx import GraphModule, Interpreter, Node
from torch.fx.experimental.partitioner_utils import NodeLatency

from fxflow.bounded_load import load_json
from fxflow.inputs import InputSet
from fxflow.nodes import NON_COMPUTE_OPS, compute_nodes, op_name

class LatencyModel(BaseModel, ABC):
    """Base for latency models; `mapping` gives torch's node -> NodeLatency dict."""

    model_config = ConfigDict(extra="forbid")

    @abstractmethod
    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        """Latency of every compute node of `gm` (nodes must be sized)."""

    def source(self) -> dict[str, Any] | None:
        """Where the model's figures come from, for the record (a fitted model names its file)."""
        return None


class SizeRuleLatency(LatencyModel):
    """Latency derived from node sizes, as torch's latency tests write it by hand.

    Memory latency is the node's total bytes. Compute latency depends on whether the node
    carries weights: a node whose total size equals its output size (an element-wise op)
    costs `unweighted_per_byte * total + unweighted_constant`; a node with weights (a
    Linear) costs `weighted_per_output_byte * output bytes`.

    `test_partition_latency`: unweighted_per_byte=2, unweighted_constant=0.
    `test_cost_aware_partition`: unweighted_per_byte=0, unweighted_constant=1.
    """

    unweighted_per_byte: float = Field(2.0, ge=0)
    unweighted_constant: float = Field(0.0, ge=0)
    weighted_per_output_byte: float = Field(1.0, ge=0)

    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        result = {}
        for node in compute_nodes(gm):
            total, output = node.size_bytes.total_size, node.size_bytes.output_size
            if total == output:
                compute = self.unweighted_per_byte * total + self.unweighted_constant
            else:
                compute = self.weighted_per_output_byte * output
            result[node] = NodeLatency(total, compute)
        return result


class OpLatency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mem: float = Field(ge=0)
    compute: float = Field(ge=0)


class TableLatency(LatencyModel):
    """Constant latency per operation, looked up by op name, falling back to `default`.

    The op name of a node is its function's name (`add`, `relu`), its method name, or the
    class name of the module it calls (`Linear`, `EmbeddingBag`).
    """

    default: OpLatency = OpLatency(mem=0.0, compute=1.0)
    ops: dict[str, OpLatency] = {}

    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        modules = dict(gm.named_modules())
        result = {}
        for node in compute_nodes(gm):
            entry = self.ops.get(op_name(node, modules), self.default)
            result[node] = NodeLatency(entry.mem, entry.compute)
        return result


class MeasuredLatency(LatencyModel):
    """Wall-clock compute time of each node on the example inputs (median of `repeats`),
    with memory latency as total bytes over `bytes_per_sec`.

    `threads` sets torch's intra-op threads while timing (this process's setting where unset):
    to predict partitions that run on their own processes, match their thread count (an
    EmbeddingBag over a large table takes milliseconds with two threads, microseconds with one).
    """

    repeats: PositiveInt = 5
    bytes_per_sec: float = Field(1e10, gt=0)
    threads: PositiveInt | None = None

    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        timer = _NodeTimer(gm, self.repeats)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(self.threads or before)
            with torch.no_grad():
                timer.run(*inputs.args)
        finally:
            torch.set_num_threads(before)
        return {
            node: NodeLatency(node.size_bytes.total_size / self.bytes_per_sec, timer.seconds.get(node, 0.0))
            for node in compute_nodes(gm)
        }


class _NodeTimer(Interpreter):
    """Interpreter that times each node `repeats` times and keeps the median."""

    def __init__(self, gm: GraphModule, repeats: int):
        super().__init__(gm)
        self.repeats = repeats
        self.seconds: dict[Node, float] = {}

    def run_node(self, n: Node) -> Any:
        if n.op in NON_COMPUTE_OPS:
            return super().run_node(n)
        samples = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            result = super().run_node(n)
            samples.append(time.perf_counter() - start)
        self.seconds[n] = sorted(samples)[len(samples) // 2]
        return result


class CalibratedLatency(LatencyModel):
    """Latencies measured by a distributed run (the execute stage's `calibrated_latency.json`),
    fed back into the partitioner: each partition's compute nodes share its measured seconds so
    that torch's partition latency (the longest path through the partition) equals what was
    measured, in proportion to `weights` (another latency model, e.g. MeasuredLatency; one unit
    per node without it). Nodes the file does not name get zero.

        - /latency@transforms.partition.latency_model: calibrated
        transforms.partition.latency_model.path: outputs/.../execute/calibrated_latency.json

    The file's `transfer.bytes_per_s` is the measured link speed, for the partition stage's
    `transfer_rate_bytes_per_sec`.
    """

    path: str
    weights: LatencyModel | None = None

    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        from fxflow.distributed.calibration import node_latency_mapping

        try:
            calibration = load_json(Path(self.path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"latency_model.path={self.path}: cannot read a calibration ({exc}); give the "
                             "calibration.json an execute stage wrote") from None
        if not isinstance(calibration, dict):
            raise ValueError(f"latency_model.path={self.path}: holds a {type(calibration).__name__}, not the "
                             "calibration object an execute stage writes")
        weights = self.weights.mapping(gm, inputs) if self.weights else None
        return node_latency_mapping(calibration, gm, weights)
