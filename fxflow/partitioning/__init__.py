"""Partitioning a sized graph over a device list: latency models (`latency`), torch's accelerator
Partitioner (`torch_backend`), and fxflow's own partitioner (the rest of this package), which
`PartitionOverDevices` drives with `backend: fxflow`: torch's cost model, exact where it can
be, fast at 10,000 nodes.

A partition transform uses it like this::

    from fxflow.partitioning import build_problem, describe, partition, size_nodes, split_graph

    size_nodes(gm, inputs)                                  # node.size_bytes, as torch's sizing gives
    problem = build_problem(gm, latency_mapping, devices, transfer_rate_bytes_per_sec)
    result = partition(problem, "best", objective="latency", time_limit_s=2.0)   # raises PlacementRefused
    split = split_graph(gm, problem, result.placement)      # submod_<pid> children, like torch's backend
    facts = describe(problem, result.placement, mode="best")  # describe_partitions' keys + latencies

`latency_mapping` is torch's {Node: NodeLatency} (what fxflow's latency models return), or
None (all latencies 0; pass `with_latency=False` to `describe` then); `devices` are torch
`Device`s or fxflow `DeviceSpec`s (name, memory, logical id; budgets may differ).
`PlacementRefused` (a RuntimeError) names the node or budget that does not fit and by how
many bytes (`blocker`, `short_bytes`, `facts()`). With a transfer rate of 0 the algorithms
treat transfers as free, while torch's critical path is undefined (it divides by zero):
`describe` then records `critical_path_latency_unavailable` instead of the figure.
`to_torch_partitions(gm, problem, placement)` gives torch `Partition` objects for code written
against torch's backend (the partition report's picture, torch's own latency helpers).

Algorithms (`ALGORITHMS`), each placing one partition per device at most, within every
device's budget, with no cycle between partitions; `partition` then cuts each partition into
its independent pieces on the same device (`placement.split_components`: same memory, never
slower; `split=False` keeps them whole):

* `pipeline`: the optimal contiguous split of a topological order (`order=`), by dynamic
  programming;
* `list_scheduling`: a HEFT-like greedy over upward ranks, then local moves and swaps;
* `milp`: the optimum by mixed-integer programming (scipy / HiGHS), for small graphs
  (`time_limit_s=`, `upper_bound=`);
* `best` (default): pipeline splits and list scheduling, each improved by local search.

Objectives: "latency" (torch's critical path, `get_latency_of_partitioned_graph`) and
"throughput" (the slowest stage when requests stream through the partitions). The cost
model (`cost`) reproduces torch's figures bit for bit in linear time.

Modules: `problem` (what is placed), `sizing`, `placement` (memory, partition graph, checks),
`cost`, `state` (incremental placement for search), `orders`, `algorithms/*`, `split`.
"""

from fxflow.partitioning.algorithms import ALGORITHMS, partition
from fxflow.partitioning.cost import (
    PartitionLatency,
    ZeroTransferRate,
    bottleneck_latency,
    critical_path_latency,
    objective_value,
    partition_latencies,
)
from fxflow.partitioning.errors import InvalidPlacement, PlacementRefused
from fxflow.partitioning.placement import Placement, check_placement, partition_memory
from fxflow.partitioning.problem import Device, Problem, build_problem
from fxflow.partitioning.result import Result
from fxflow.partitioning.sizing import size_nodes
from fxflow.partitioning.split import describe, split_graph, to_torch_partitions

__all__ = [
    "ALGORITHMS",
    "Device",
    "InvalidPlacement",
    "PartitionLatency",
    "Placement",
    "PlacementRefused",
    "Problem",
    "Result",
    "ZeroTransferRate",
    "bottleneck_latency",
    "build_problem",
    "check_placement",
    "critical_path_latency",
    "describe",
    "objective_value",
    "partition",
    "partition_latencies",
    "partition_memory",
    "size_nodes",
    "split_graph",
    "to_torch_partitions",
]
