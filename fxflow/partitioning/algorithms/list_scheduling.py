"""DAG-aware placement in the spirit of HEFT: list scheduling, then local improvement.

Nodes are taken by upward rank (the longest path, with transfers, from a node to the end;
a topological order that interleaves parallel branches by how critical they are). Each goes
to the device where the objective of the placement so far grows least, among devices that
keep it within budget, leave room for the nodes still to come and create no cycle between
partitions; ties go to the device that receives fewer bytes, then the lower index. Since a
partition's latency is its longest path, parallel branches placed together cost no more than
the longest of them, and the greedy keeps them together until memory says otherwise.

If the greedy paints itself into a corner (a node fits nowhere), the contiguous split of the
dynamic program is the starting point instead. Either way `local_search.improve` follows.

    result = list_schedule(problem, objective="latency", time_limit_s=2.0)
"""

from __future__ import annotations

import time

from fxflow.partitioning.algorithms.local_search import improve, repair
from fxflow.partitioning.algorithms.pipeline_dp import pipeline_split
from fxflow.partitioning.cost import Objective, objective_value
from fxflow.partitioning.errors import refuse_if_unplaceable
from fxflow.partitioning.orders import ORDERS
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result
from fxflow.partitioning.state import PlacementState


def list_schedule(problem: Problem, objective: Objective = "latency", improve_placement: bool = True,
                  time_limit_s: float | None = 10.0) -> Result:
    started = time.perf_counter()
    deadline = None if time_limit_s is None else started + time_limit_s
    refuse_if_unplaceable(problem)
    state, how = construct(problem, objective, deadline)
    info: dict = {"start": how}
    if state is None:
        start = pipeline_split(problem, objective).placement
        state = PlacementState(problem, [start.devices[p][0] for p in start.partition_of])
        info["start"] = "pipeline (" + how + ")"
    info["start_value"] = state.objective(objective)
    if improve_placement:
        info.update(improve(state, objective, deadline))
    placement = state.placement()
    info["seconds"] = time.perf_counter() - started
    return Result(placement, "list_scheduling", objective, objective_value(problem, placement, objective), info=info)


def greedy(problem: Problem, objective: str, order: str = "upward_rank", respect_memory: bool = True) -> PlacementState | None:
    """The list-scheduling pass; None when some node fits on no device. Without `respect_memory`
    budgets are ignored (a start for `local_search.repair`)."""
    state = PlacementState(problem)
    budgets = [d.mem_bytes for d in problem.devices]
    capacity = sum(budgets)
    for v in ORDERS[order](problem):
        left_after = state.remaining - problem.size_bytes[v]
        best = None
        for d in range(state.k):
            if respect_memory:
                grow = state.added_bytes(v, d)
                if state.mem[d] + grow > budgets[d] or left_after > capacity - sum(state.mem) - grow:
                    continue
            sources = {state.part[u] for u in problem.inputs[v]} - {d}
            if any(state.reaches(d, q) for q in sources):
                continue
            token = state.move(v, d)
            value = state.objective(objective)
            state.undo(token)
            received = sum(problem.output_bytes[u] for u in problem.inputs[v] if state.part[u] != d)
            key = (value, received, d)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        state.move(v, best[2])
    return state


def construct(problem: Problem, objective: str, deadline: float | None = None,
              allow_repair: bool = True) -> tuple[PlacementState | None, str]:
    """A placement that fits: the greedy in upward-rank, graph and earliest-start order, else (with
    `allow_repair`) the memory-blind greedy repaired by moving nodes off crowded devices.
    Returns (None, reason) if all fail."""
    for order in ("upward_rank", "graph", "earliest_start"):
        state = greedy(problem, objective, order)
        if state is not None:
            return state, f"greedy/{order}"
    if allow_repair:
        state = greedy(problem, objective, "upward_rank", respect_memory=False)
        if state is not None and repair(state, deadline):
            return state, "greedy/repaired"
    return None, "the greedy found no device for some node" + (
        " and moving nodes off crowded devices did not help" if allow_repair else "")
