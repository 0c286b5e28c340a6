"""Data flow and placement of split modules, read without starting any process."""

from __future__ import annotations

import pytest

from fxflow.distributed import Placement, Slot, build_plan, placement_from_facts
from fxflow.distributed.cases import branches_case, chain_case, sparse_nn_case


@pytest.fixture(scope="module")
def sparse_nn():
    return sparse_nn_case(predict=False)


def test_sparse_nn_placement_puts_tables_on_two_workers(sparse_nn):
    placement = placement_from_facts(sparse_nn.facts["partitions"])
    facts = {e["id"]: e for e in sparse_nn.facts["partitions"]}
    embedding = [pid for pid, e in facts.items() if any(n.startswith("embedding_layers") for n in e["nodes"])]
    assert len(embedding) == 2
    # each embedding partition on its own worker, on the device torch's partitioner gave it
    assert {placement.slots[p].device_name for p in embedding} == {facts[p]["devices"][0] for p in embedding}
    assert len({placement.slots[p].rank for p in embedding}) == 2
    # replicated (dense) partitions run on one of their devices, and the placement says which ones they had
    for pid, candidates in placement.replicated.items():
        assert candidates == tuple(facts[pid]["devices"]) and len(candidates) > 1
        assert placement.slots[pid].device_name in candidates
    assert set(placement.replicated) == {p for p, e in facts.items() if len(e["devices"]) > 1}
    assert "dev_2" not in {s.device_name for s in placement.slots.values()}  # idle device, no worker
    assert placement.rank_devices() == {1: "cpu", 2: "cpu"}


def test_sparse_nn_plan_matches_partitioner_dag(sparse_nn):
    plan = build_plan(sparse_nn.split, placement_from_facts(sparse_nn.facts["partitions"]))
    dag = plan.partition_dag
    for entry in sparse_nn.facts["partitions"]:
        assert sorted(p for p in dag.predecessors(entry["id"]) if isinstance(p, int)) == entry["parents"]
        assert sorted(c for c in dag.successors(entry["id"]) if isinstance(c, int)) == entry["children"]
    assert not plan.is_chain()
    # frozen randint ids are constants copied once, never sent per request
    assert plan.constant_readers and all(not name.startswith("_tensor_constant") for name in (e.value for e in plan.edges))
    # a getitem on a tuple output lives where the tuple is made, so only the item crosses
    homes = {s.name: s.home for s in plan.steps}
    for edge in plan.edges:
        assert homes[edge.value] == edge.src_rank != edge.dst_rank
    assert all(s.home == 0 for s in plan.steps if s.op in ("placeholder", "output"))


def test_chain_and_branches_shapes():
    chain = chain_case(predict=False, width=16, depth=4)
    branches = branches_case(predict=False, width=16)
    chain_plan = build_plan(chain.split, placement_from_facts(chain.facts["partitions"]))
    branch_plan = build_plan(branches.split, placement_from_facts(branches.facts["partitions"]))
    assert chain.facts["num_partitions"] == 4 and chain_plan.is_chain()
    assert [(e.src_rank, e.dst_rank) for e in chain_plan.edges] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]
    assert not branch_plan.is_chain()
    # stem, head and branch 0 share dev_0; branches 1 and 2 run on their own workers
    assert branch_plan.partitions_of(1) == [0, 1, 4] and branch_plan.partitions_of(2) == [2]


def test_placement_refusals():
    with pytest.raises(ValueError, match="start at 1"):
        Placement.of({0: (0, "cpu")})
    with pytest.raises(ValueError, match="without gaps"):
        Placement.of({0: (1, "cpu"), 1: (3, "cpu")})
    with pytest.raises(ValueError, match="two devices"):
        Placement.of({0: Slot(1, "cpu"), 1: Slot(1, "cuda:0")})
    chain = chain_case(predict=False, width=16, depth=4)
    with pytest.raises(ValueError, match=r"no placement for partitions \[3\]"):
        build_plan(chain.split, {0: (1, "cpu"), 1: (1, "cpu"), 2: (1, "cpu")})
