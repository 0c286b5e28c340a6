"""Placement algorithms by name; `partition` runs one.

| name | what it finds |
| --- | --- |
| `pipeline` | the optimal contiguous split of a topological order (dynamic program) |
| `list_scheduling` | a HEFT-like greedy over upward ranks, then local moves and swaps |
| `milp` | the optimal placement with one partition per device (scipy milp / HiGHS), small graphs |
| `best` | pipeline splits and list scheduling, each improved locally; the best wins (default) |

    result = partition(problem, "best", objective="latency", time_limit_s=2.0)

Each algorithm places one partition per device; `partition` then cuts partitions into their
independent pieces and, for "latency", cuts off the work that is ready before a partition's late
inputs arrive (`arrival.split_by_arrival`); `split=False` keeps them whole.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from fxflow.partitioning.algorithms.list_scheduling import list_schedule
from fxflow.partitioning.arrival import split_by_arrival
from fxflow.partitioning.algorithms.pipeline_dp import pipeline_split
from fxflow.partitioning.algorithms.portfolio import best_of
from fxflow.partitioning.cost import OBJECTIVES, objective_value
from fxflow.partitioning.placement import split_components
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result

# Seconds `partition` gives `split_by_arrival` at most, after the algorithm's own time limit.
ARRIVAL_SECONDS = 1.0


def milp_partition(problem: Problem, **params: Any) -> Result:
    """algorithms.milp.milp_partition, imported when first used: scipy's solver costs 0.4 s to import."""
    from fxflow.partitioning.algorithms.milp import milp_partition as solve

    return solve(problem, **params)


ALGORITHMS: dict[str, Callable[..., Result]] = {
    "pipeline": pipeline_split,
    "list_scheduling": list_schedule,
    "milp": milp_partition,
    "best": best_of,
}


def partition(problem: Problem, algorithm: str = "best", objective: str = "latency", split: bool = True,
              **params: Any) -> Result:
    """Run `algorithm` on `problem`; `params` are that algorithm's keyword arguments (`order=` for
    pipeline, `time_limit_s=` for all but pipeline, `upper_bound=` for milp, `kicks=` for best).

    The algorithms place one partition per device; with `split`, each is then cut into its
    independent pieces (`placement.split_components`: same device, same memory, never slower)
    and, for "latency", where its inputs arrive at different times (`arrival.split_by_arrival`:
    same device, within budget, only where the critical path drops); `info["one_partition_per_device"]`
    keeps the figure from before."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, not {algorithm!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    result = ALGORITHMS[algorithm](problem, objective=objective, **params)
    if not split:
        return result
    pieces = split_components(problem, result.placement)
    if objective == "latency":
        pieces = split_by_arrival(problem, pieces, deadline=time.perf_counter() + ARRIVAL_SECONDS)
    if pieces.num_partitions == result.placement.num_partitions:
        return result
    value = objective_value(problem, pieces, objective)
    if value > result.value:  # cannot happen (see split_components); keep the unsplit placement if it did
        return result
    before = {"value": result.value, "num_partitions": result.placement.num_partitions}
    return replace(result, placement=pieces, value=value, info=dict(result.info, one_partition_per_device=before))
