"""Placement algorithms by name; `partition` runs one.

| name | what it finds |
| --- | --- |
| `pipeline` | the optimal contiguous split of a topological order (dynamic program) |
| `list_scheduling` | a HEFT-like greedy over upward ranks, then local moves and swaps |
| `milp` | the optimal placement with one partition per device (scipy milp / HiGHS), small graphs |
| `best` | pipeline splits and list scheduling, each improved locally; the best wins (default) |

    result = partition(problem, "best", objective="latency", time_limit_s=2.0)
"""

from __future__ import annotations

from typing import Any, Callable

from fxflow.partitioning.algorithms.list_scheduling import list_schedule
from fxflow.partitioning.algorithms.milp import milp_partition
from fxflow.partitioning.algorithms.pipeline_dp import pipeline_split
from fxflow.partitioning.algorithms.portfolio import best_of
from fxflow.partitioning.cost import OBJECTIVES
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result

ALGORITHMS: dict[str, Callable[..., Result]] = {
    "pipeline": pipeline_split,
    "list_scheduling": list_schedule,
    "milp": milp_partition,
    "best": best_of,
}


def partition(problem: Problem, algorithm: str = "best", objective: str = "latency", **params: Any) -> Result:
    """Run `algorithm` on `problem`; `params` are that algorithm's keyword arguments
    (`order=` for pipeline and list_scheduling, `time_limit_s=` for all but pipeline)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHMS)}, not {algorithm!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    return ALGORITHMS[algorithm](problem, objective=objective, **params)
