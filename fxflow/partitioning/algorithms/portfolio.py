"""Several starts, each improved locally; the best one wins.

Starts: the optimal contiguous split of the graph order and of the earliest-start order (the
latter cuts parallel branches at equal depth), and the list-scheduling greedy. Each is then
improved by `local_search.improve` within its share of the time limit.

    result = best_of(problem, objective="latency", time_limit_s=1.0)
    result.info["candidates"]      # value of every start before and after improvement
"""

from __future__ import annotations

import time

from fxflow.partitioning.algorithms.list_scheduling import construct
from fxflow.partitioning.algorithms.local_search import EXHAUSTIVE_NODES, improve, iterated
from fxflow.partitioning.algorithms.pipeline_dp import pipeline_split
from fxflow.partitioning.cost import Objective, objective_value
from fxflow.partitioning.errors import PlacementRefused, refuse_if_unplaceable
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result
from fxflow.partitioning.state import PlacementState


def best_of(problem: Problem, objective: Objective = "latency", time_limit_s: float | None = 5.0) -> Result:
    started = time.perf_counter()
    refuse_if_unplaceable(problem)
    starts: list[tuple[str, PlacementState]] = []
    refusal: PlacementRefused | None = None
    for order in ("graph", "earliest_start"):
        try:
            split = pipeline_split(problem, objective, order).placement
        except PlacementRefused as exc:
            refusal = refusal or exc
            continue
        starts.append((f"pipeline/{order}", PlacementState(problem, [split.devices[p][0] for p in split.partition_of])))
    scheduled, how = construct(problem, objective)
    if scheduled is not None:
        starts.append((f"list_scheduling ({how})", scheduled))
    if not starts:
        raise refusal or PlacementRefused("no start placement fits the devices", "all devices", problem.min_bytes,
                                          sum(d.mem_bytes for d in problem.devices))
    candidates = {}
    best_name, best_state, best_value = None, None, float("inf")
    for i, (name, state) in enumerate(starts):
        before = state.objective(objective)
        deadline = None
        if time_limit_s is not None:
            left = time_limit_s - (time.perf_counter() - started)
            deadline = time.perf_counter() + max(0.0, left) / (len(starts) - i)
        if problem.num_nodes <= EXHAUSTIVE_NODES:
            iterated(state, objective, deadline, seed=i)
        else:
            improve(state, objective, deadline)
        after = state.objective(objective)
        candidates[name] = {"start": before, "improved": after}
        if after < best_value:
            best_name, best_state, best_value = name, state, after
    placement = best_state.placement()
    return Result(placement, "best", objective, objective_value(problem, placement, objective),
                  info={"winner": best_name, "candidates": candidates, "seconds": time.perf_counter() - started})
