"""DAG-aware placement in the spirit of HEFT: list scheduling, then local improvement.

Nodes are taken by upward rank (the longest path, with transfers, from a node to the end;
a topological order that interleaves parallel branches by how critical they are). Each goes
to the device where the objective of the placement so far grows least, among devices that
keep it within budget, leave room for the nodes still to come and create no cycle between
partitions; ties go to the device that receives fewer bytes, then the lower index. Since a
partition's latency is its longest path, parallel branches placed together cost no more than
the longest of them, and the greedy keeps them together until memory says otherwise.

The greedy also runs backwards, from the end of the graph by downward rank: the join and what
follows it get their room first, and parallel branches, longest first, go where they delay
the end least. The better of the two is kept. If the greedy paints itself into a corner in
both directions (a node fits nowhere), it is tried in graph and earliest-start order; failing
that, the contiguous split of the dynamic program is the start, and where no contiguous split
fits either, the greedy without budgets followed by moving nodes off crowded devices.
`local_search.improve` follows.

    result = list_schedule(problem, objective="latency", time_limit_s=2.0)
"""

from __future__ import annotations

import time

from fxflow.partitioning.algorithms.local_search import improve, repair
from fxflow.partitioning.algorithms.pipeline_dp import pipeline_split
from fxflow.partitioning.cost import Objective, objective_value
from fxflow.partitioning.errors import PlacementRefused, refuse_if_unplaceable
from fxflow.partitioning.orders import ORDERS, REVERSE_ORDERS
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result
from fxflow.partitioning.state import UNPLACED, PlacementState


def list_schedule(problem: Problem, objective: Objective = "latency", improve_placement: bool = True,
                  time_limit_s: float | None = 10.0) -> Result:
    """The better of the forward and backward greedy (or a fallback start), improved locally within
    `time_limit_s`."""
    started = time.perf_counter()
    deadline = None if time_limit_s is None else started + time_limit_s
    refuse_if_unplaceable(problem)
    found, why = constructions(problem, objective, deadline, allow_repair=False)
    if found:
        how, state = min(found, key=lambda named: named[1].objective(objective))
    else:
        try:
            start = pipeline_split(problem, objective).placement
            state = PlacementState(problem, [start.devices[p][0] for p in start.partition_of])
            how = f"pipeline ({why})"
        except PlacementRefused as refusal:
            found, why = constructions(problem, objective, deadline, allow_repair=True)
            if not found:
                raise PlacementRefused(
                    f"no placement found (the devices may still admit one; algorithm='milp' decides on small "
                    f"graphs): {why}; {refusal}", refusal.blocker, refusal.needed_bytes, refusal.available_bytes,
                ) from refusal
            how, state = found[0]
    info: dict = {"start": how}
    info["start_value"] = state.objective(objective)
    if improve_placement:
        info.update(improve(state, objective, deadline))
    placement = state.placement()
    info["seconds"] = time.perf_counter() - started
    return Result(placement, "list_scheduling", objective, objective_value(problem, placement, objective), info=info)


def greedy(problem: Problem, objective: str, order: str = "upward_rank", respect_memory: bool = True) -> PlacementState | None:
    """The list-scheduling pass; None when some node fits on no device. `order` may be reverse
    topological ("downward_rank"): the graph is then placed from its end. Without
    `respect_memory` budgets are ignored (a start for `local_search.repair`)."""
    state = PlacementState(problem)
    budgets = [d.mem_bytes for d in problem.devices]
    capacity = sum(budgets)
    backwards = order in REVERSE_ORDERS
    for v in (REVERSE_ORDERS if backwards else ORDERS)[order](problem):
        left_after = state.remaining - problem.size_bytes[v]
        placed = {state.part[s] for s in problem.users[v]} if backwards else {state.part[u] for u in problem.inputs[v]}
        placed.discard(UNPLACED)
        candidates = []
        for d in range(state.k):
            if respect_memory:
                if not state.fits_placing(v, d):
                    continue
                if left_after > capacity - sum(state.mem) - state.added_bytes(v, d):
                    continue
            if any(state.reaches(q, d) if backwards else state.reaches(d, q) for q in placed - {d}):
                continue
            token = state.move(v, d)
            value = state.objective(objective)
            state.undo(token)
            received = sum(problem.output_bytes[u] for u in problem.inputs[v] if state.part[u] not in (d, UNPLACED))
            sent = sum(problem.output_bytes[v] for s in problem.users[v] if state.part[s] not in (d, UNPLACED))
            candidates.append((value, received + sent, d))
        if not candidates:
            return None
        state.move(v, _choose(state, v, candidates, backwards))
    return state


# Going backwards, candidates within this share of the best objective count as equally good.
NEAR = 0.02


def _choose(state: PlacementState, v: int, candidates: list[tuple[float, int, int]], backwards: bool) -> int:
    """The device for node v: the lowest (objective, bytes moved, index). Going backwards, when v is
    one of several branches joining at a consumer, the devices within NEAR of the lowest
    objective that do not hold such a consumer come first: a branch put beside the join
    lengthens that partition's path, one put elsewhere runs beside the other branches, and the
    room next to the end of the graph is kept for the branches that come last (the shortest)."""
    if not backwards:
        return min(candidates)[2]
    problem = state.problem
    joins = {state.part[s] for s in problem.users[v] if len(problem.inputs[s]) > 1}
    if not joins:
        return min(candidates)[2]
    lowest = min(c[0] for c in candidates)
    near = [c for c in candidates if c[0] <= lowest + NEAR * abs(lowest)]
    return min(near, key=lambda c: (c[2] in joins, c))[2]


def constructions(problem: Problem, objective: str, deadline: float | None = None,
                  allow_repair: bool = True) -> tuple[list[tuple[str, PlacementState]], str]:
    """Placements that fit: the greedy forwards by upward rank and backwards by downward rank (placing
    the end of the graph first keeps room for it); if both fail, in graph and earliest-start order;
    if all fail and `allow_repair`, the memory-blind greedy repaired by moving nodes off crowded
    devices. Returns the successes and, if there are none, why."""
    found = []
    for order in ("upward_rank", "downward_rank"):
        state = greedy(problem, objective, order)
        if state is not None:
            found.append((f"greedy/{order}", state))
    if found:
        return found, ""
    for order in ("graph", "earliest_start"):
        state = greedy(problem, objective, order)
        if state is not None:
            return [(f"greedy/{order}", state)], ""
    if allow_repair:
        state = greedy(problem, objective, "upward_rank", respect_memory=False)
        if state is not None and repair(state, deadline):
            return [("greedy/repaired", state)], ""
    return [], "the greedy found no device for some node" + (
        " and moving nodes off crowded devices did not help" if allow_repair else "")
