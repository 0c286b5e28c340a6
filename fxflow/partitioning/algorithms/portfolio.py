"""Several starts, each improved locally; the best one wins.

Starts: the optimal contiguous split of the graph order, and of the earliest-start order (it
cuts parallel branches at equal depth) and the upward-rank order (parallel branches longest
first, so the last devices get the shortest) where they differ from it (on graphs over
`SMALL_GRAPH` nodes, only where some node moves by more than 1% of the graph); the
list-scheduling greedy, forwards and backwards, on graphs of up to `GREEDY_MAX_WORK`
node-device pairs (it costs one objective evaluation per pair and direction). Each start is
then improved by local search within its share of `time_limit_s`; with `kicks` > 0, small
graphs also get that many random kicks per start (iterated local search, seeded, so the
result is reproducible unless the time limit cuts the search short).

    result = best_of(problem, objective="latency", time_limit_s=1.0)
    result.info["candidates"]      # objective of every start before and after improvement

The winner is the placement that is best as `partition` returns it: cut into independent
pieces (`placement.split_components`) and, for "latency", where its inputs arrive at different
times (`arrival.split_by_arrival`). Each start is judged so both before and after local search:
local search minimises the objective of whole partitions, and a start it made worse there can
still be the better one once cut.
"""

from __future__ import annotations

import time

from fxflow.partitioning.algorithms.list_scheduling import constructions
from fxflow.partitioning.algorithms.local_search import EXHAUSTIVE_NODES, improve, iterated
from fxflow.partitioning.algorithms.pipeline_dp import best_split
from fxflow.partitioning.arrival import split_by_arrival
from fxflow.partitioning.cost import Objective, objective_value
from fxflow.partitioning.errors import PlacementRefused, refuse_if_unplaceable
from fxflow.partitioning.orders import earliest_start_order, upward_rank_order
from fxflow.partitioning.placement import Placement, split_components
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result
from fxflow.partitioning.state import PlacementState

GREEDY_MAX_WORK = 20_000
SMALL_GRAPH = 2_000
# Seconds the arrival cuts get when a candidate is judged (`partition` gives the winner more).
JUDGE_ARRIVAL_SECONDS = 0.25


def best_of(problem: Problem, objective: Objective = "latency", time_limit_s: float | None = 2.0, kicks: int = 0) -> Result:
    started = time.perf_counter()
    deadline = None if time_limit_s is None else started + time_limit_s
    refuse_if_unplaceable(problem)
    starts: list[tuple[str, PlacementState]] = []
    reasons = []
    orders = {"graph": list(range(problem.num_nodes))}
    for name, make in (("earliest_start", earliest_start_order), ("upward_rank", upward_rank_order)):
        sequence = make(problem)
        if _reorders(sequence) and sequence not in orders.values():
            orders[name] = sequence
    for name, sequence in orders.items():
        try:
            device_of, _ = best_split(problem, objective, sequence, name)
        except PlacementRefused as exc:
            reasons.append(str(exc))
            continue
        starts.append((f"pipeline/{name}", PlacementState(problem, device_of)))
    if problem.num_nodes * len(problem.devices) <= GREEDY_MAX_WORK or not starts:
        found, why = constructions(problem, objective, deadline, allow_repair=not starts)
        starts += [(f"list_scheduling ({how})", state) for how, state in found]
        if not found:
            reasons.append(why)
    if not starts:
        raise PlacementRefused(
            "no placement found (the devices may still admit one; algorithm='milp' decides on small graphs): "
            + "; ".join(reasons), "all devices", problem.min_bytes, sum(d.mem_bytes for d in problem.devices))
    candidates = {}
    best_name, best_placement, best_value = "", starts[0][1].placement(), float("inf")
    for i, (name, state) in enumerate(starts):
        before = state.objective(objective)
        unimproved = state.placement()
        share = None
        if deadline is not None:
            share = time.perf_counter() + max(0.0, deadline - time.perf_counter()) / (len(starts) - i)
        if problem.num_nodes <= EXHAUSTIVE_NODES and kicks:
            iterated(state, objective, share, kicks=kicks, seed=i)
        else:
            improve(state, objective, share)
        after = state.objective(objective)
        improved = state.placement()
        cut = {label: _as_returned(problem, placement, objective)
               for label, placement in (("improved", improved), ("start", unimproved))}
        candidates[name] = {"start": before, "improved": after, "split": cut["improved"], "start_split": cut["start"]}
        for label, placement in (("improved", improved), ("start", unimproved)):
            if cut[label] < best_value:  # judged as `partition` will return it
                best_name = name if label == "improved" else f"{name} (not improved)"
                best_placement, best_value = placement, cut[label]
    return Result(best_placement, "best", objective, objective_value(problem, best_placement, objective),
                  info={"winner": best_name, "candidates": candidates, "seconds": time.perf_counter() - started})


def _as_returned(problem: Problem, placement: Placement, objective: Objective) -> float:
    """The objective of `placement` as `partition` returns it (cut into pieces and, for "latency",
    by arrival time, the latter for at most `JUDGE_ARRIVAL_SECONDS`)."""
    pieces = split_components(problem, placement)
    if objective == "latency":
        pieces = split_by_arrival(problem, pieces, deadline=time.perf_counter() + JUDGE_ARRIVAL_SECONDS)
    return objective_value(problem, pieces, objective)


def _reorders(sequence: list[int]) -> bool:
    """Whether an order differs enough from graph order for its splits to differ: on large graphs,
    shuffles within a short stretch (the branches of one attention block) are left to local search."""
    shift = max((abs(v - i) for i, v in enumerate(sequence)), default=0)
    return shift > 0 if len(sequence) <= SMALL_GRAPH else shift > len(sequence) // 100
