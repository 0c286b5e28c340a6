"""Reference cases for running partitions on separate processes, partitioned as the Partition
transform does (torch's Partitioner on sized nodes, the same facts): the recommendation model
in sparse_nn mode over three 33,000,000-byte devices, a chain of Linear blocks in four stages,
and a model with parallel branches on three devices. The benchmark and the tests run them.

    case = chain_case()
    output, measurement = run_partitioned(case.split, placement_from_facts(case.facts["partitions"]), case.inputs)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import torch
from torch import nn
from torch.fx import GraphModule, symbolic_trace
from torch.fx.experimental.accelerator_partitioner import Partitioner, set_parents_and_children
from torch.fx.experimental.partitioner_utils import (
    Device,
    Partition,
    PartitionerConfig,
    PartitionMode,
    get_latency_of_partitioned_graph,
    get_partition_to_latency_mapping,
)
from torch.fx.passes import graph_manipulation

from fxflow.models.recommendation import SparseNN
from fxflow.models.staged import MLPChain, ParallelBranches
from fxflow.nodes import NON_COMPUTE_OPS
from fxflow.inputs import InputSet
from fxflow.partitioning.latency import MeasuredLatency
from fxflow.partitioning.torch_backend import describe_partitions


@dataclass
class Case:
    """A model, its trace, the Partitioner's split and facts, and example inputs."""

    name: str
    model: nn.Module
    traced: GraphModule
    split: GraphModule
    partitions: list[Partition]
    facts: dict[str, Any]
    inputs: dict[str, Any]
    rng_seed: int  # global RNG state at trace time (replay it before calling the eager model)
    microbatches: int = 0  # micro-batches for a pipelined measurement; 0 where the batch cannot be split
    latency_mapping: dict[Any, Any] = field(default_factory=dict)


def sparse_nn_case(predict: bool = True) -> Case:
    """SparseNN, sparse_nn mode, three 33 MB devices: dense parts replicated on dev_0 and dev_1,
    one embedding partition on each of them."""
    gen = torch.Generator().manual_seed(1)
    inputs = {
        "a": torch.rand(2, 4, generator=gen),
        "b": torch.randint(0, 10, (8,), generator=gen),
        "offset": torch.tensor([0, 3]),
    }
    return _partition("sparse_nn", SparseNN(), inputs, [33_000_000] * 3, PartitionMode.sparse_nn, predict)


def chain_case(predict: bool = True, width: int = 256, depth: int = 8, batch: int = 32) -> Case:
    """MLPChain split by size into four equal stages, one per device."""
    model = MLPChain(width, depth)
    inputs = {"x": torch.randn(batch, width, generator=torch.Generator().manual_seed(1))}
    block = sum(p.numel() * p.element_size() for p in model.blocks[0].parameters()) + 2 * batch * width * 4
    budget = block * depth // 4 + block // 2
    case = _partition("chain", model, inputs, [budget] * 4, PartitionMode.size_based, predict)
    case.microbatches = 4
    return case


def branches_case(predict: bool = True, width: int = 128, branches: int = 3, batch: int = 32) -> Case:
    """ParallelBranches: stem and head on dev_0, branch i on device i (ahead-of-time mapping)."""
    model = ParallelBranches(width, branches)
    inputs = {"x": torch.randn(batch, width, generator=torch.Generator().manual_seed(1))}

    def mapping(gm: GraphModule) -> tuple[dict, dict]:
        to_partition = {}
        for node in gm.graph.nodes:
            if node.name.startswith("branch_"):
                to_partition[node] = int(node.name.split("_")[1]) + 1
            elif node.op not in NON_COMPUTE_OPS:
                to_partition[node] = 0 if node.name in ("stem", "relu") else branches + 1
        devices = {0: [0], branches + 1: [0], **{i + 1: [i] for i in range(branches)}}
        return to_partition, devices

    case = _partition("branches", model, inputs, [10**9] * branches, PartitionMode.aot_based, predict, mapping)
    case.microbatches = 4
    return case


CASES: dict[str, Callable[..., Case]] = {"sparse_nn": sparse_nn_case, "chain": chain_case, "branches": branches_case}


def _partition(name: str, model: nn.Module, inputs: dict[str, Any], budgets: list[int], mode: PartitionMode,
               predict: bool, aot: Callable[[GraphModule], tuple[dict, dict]] | None = None) -> Case:
    seed = 1234
    torch.manual_seed(seed)
    traced = symbolic_trace(model)
    graph_manipulation.get_size_of_all_nodes(traced, list(inputs.values()))
    devices = [Device(f"dev_{i}", b, i) for i, b in enumerate(budgets)]
    latency = MeasuredLatency(repeats=15).mapping(traced, InputSet(dict(inputs))) if predict else {}
    node_to_partition, partition_to_devices = aot(traced) if aot else ({}, {})
    partitioner = Partitioner()
    config = PartitionerConfig(devices, mode=mode, node_to_latency_mapping=latency,
                               node_to_partition_mapping=node_to_partition,
                               partition_to_logical_device_mapping=partition_to_devices)
    result = partitioner.partition_graph(traced, traced, config)
    if mode == PartitionMode.aot_based:
        # torch's aot_based mode leaves parents/children empty, which its critical path needs
        set_parents_and_children(partitioner.partitions)
    specs = [SimpleNamespace(name=d.name, logical_id=d.logical_id, mem_bytes=d.available_mem_bytes) for d in devices]
    facts = describe_partitions(partitioner.partitions, specs, mode.name)
    if latency:
        per_partition = get_partition_to_latency_mapping(partitioner.partitions, latency)
        for entry, part in zip(facts["partitions"], partitioner.partitions):
            entry["latency"] = [float(v) for v in per_partition[part]]
        # No link model in the prediction: transfers cost nothing (an infinitely fast link).
        facts["critical_path_latency"] = float(get_latency_of_partitioned_graph(partitioner.partitions, per_partition, float("inf")))
    return Case(name, model, traced, result.module_with_submodules, partitioner.partitions, facts, inputs, seed,
                latency_mapping=latency)
