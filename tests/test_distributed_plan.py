"""Placement of partitions on worker ranks and the data flow of split modules, read without
starting any process. (The recipes' runs check the same on real partitioner output:
tests/test_distributed_recipes.py.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.passes.split_module import split_module

from fxflow.distributed import Slot, SlotAssignment, build_plan, placement_from_facts


def _entry(pid: int, devices: list[str], parents: list[int], children: list[int]) -> dict:
    return {"id": pid, "devices": devices, "logical_device_ids": [int(d[-1]) for d in devices],
            "parents": parents, "children": children}


# The shape of sparse_nn mode over three devices: two dense partitions replicated on dev_0 and
# dev_1, a table partition on each of them, dev_2 idle. Partition 0 feeds only the table on dev_1.
SPARSE_LIKE = [_entry(0, ["dev_0", "dev_1"], [], [3]), _entry(1, ["dev_0"], [], [2]),
               _entry(2, ["dev_0", "dev_1"], [1, 3], []), _entry(3, ["dev_1"], [0], [2])]


def test_one_worker_per_device_holding_a_partition():
    placement = placement_from_facts(SPARSE_LIKE, {"dev_1": "cuda:0"})
    assert placement.rank_devices() == {1: "cpu", 2: "cuda:0"}  # ranks by logical id; dev_2 holds nothing
    assert {p: (s.rank, s.device_name) for p, s in placement.slots.items()} == {
        0: (2, "dev_1"),  # replicated: on the device of its only neighbour, not the first candidate
        1: (1, "dev_0"),
        2: (1, "dev_0"),  # replicated, neighbours on both: the first candidate
        3: (2, "dev_1")}
    assert placement.replicated == {0: ("dev_0", "dev_1"), 2: ("dev_0", "dev_1")}
    assert [p["replicated_on"] for p in placement.to_json()] == [["dev_0", "dev_1"], [], ["dev_0", "dev_1"], []]


class _Fan(nn.Module):
    """x -> (a tuple of two halves, an int) in stage 0 -> stage 1 reads one half, stage 2 the other."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        halves = torch.chunk(x, 2, dim=1)
        rows = x.size(0)
        left = halves[0] * self.scale
        right = halves[1] + rows
        return torch.cat([left, right], dim=1)


def _fan_split():
    model = _Fan()
    stage = {"chunk": 0, "getitem": 0, "getitem_1": 0, "size": 0, "scale": 1, "mul": 1, "add": 2, "cat": 2}
    return split_module(symbolic_trace(model), model, lambda node: stage[node.name])


def test_plan_sends_only_what_crosses():
    plan = build_plan(_fan_split(), {0: (1, "cpu"), 1: (2, "cpu"), 2: (3, "cpu")})
    homes = {s.name: s.home for s in plan.steps}
    # a getitem on a tuple output lives where the tuple is made, so only the item crosses
    for edge in plan.edges:
        assert homes[edge.value] == edge.src_rank != edge.dst_rank
    assert all(s.home == 0 for s in plan.steps if s.op in ("placeholder", "output"))
    assert not plan.is_chain() and plan.partitions_of(2) == [1]
    dag = {(u, v) for u, v in plan.partition_dag.edges}
    assert dag == {("input", 0), (0, 1), (0, 2), (1, 2), (2, "output")}


def test_placement_refusals():
    with pytest.raises(ValueError, match="start at 1"):
        SlotAssignment.of({0: (0, "cpu")})
    with pytest.raises(ValueError, match="without gaps"):
        SlotAssignment.of({0: (1, "cpu"), 1: (3, "cpu")})
    with pytest.raises(ValueError, match="two devices"):
        SlotAssignment.of({0: Slot(1, "cpu"), 1: Slot(1, "cuda:0")})
    with pytest.raises(ValueError, match=r"no placement for partitions \[2\]"):
        build_plan(_fan_split(), {0: (1, "cpu"), 1: (1, "cpu")})
