"""The optimal placement with one partition per device, by mixed-integer programming (scipy's
`milp`, i.e. HiGHS). Meant for small graphs: it measures how far the other algorithms are from
the optimum.

Variables: x[v,d] = node v on device d (binary); everything else is continuous and pinned to
the right value by the objective pushing it down:

* t[v] >= t[u] + w[v] when u -> v sit on the same device, t[v] >= w[v]: the longest path
  inside v's partition ending at v; L[d] >= t[v] for v on d: the partition's latency;
* y[q,d] >= x[u,q] + x[v,d] - 1 per edge u -> v: partition q feeds partition d;
  z[u,q,d] likewise per producer u: u's output crosses from q to d (counted once, as torch does);
* memory: sizes, the aux nodes each partition reads (r[a,d] >= x[v,d]) and the buffers of
  inputs from other devices (e[u,v,d] >= x[v,d] - x[u,d]), at most the device's budget;
* latency objective: S[d] >= S[q] + L[q] + transfer(q,d) when y[q,d], minimise max S[d] + L[d]
  (torch's critical path); throughput objective: minimise max L[d] + inbound transfer(d);
* no cycles: an order p[d] with p[d] >= p[q] + 1 when y[q,d].

Interchangeable devices (same budget, own logical id) only pass data to higher indices, which
removes symmetric copies of each solution; the critical path is at least the heaviest node
path, and at most `upper_bound` when one is given.

    result = milp_partition(problem, objective="latency", time_limit_s=30)
    result.optimal, result.info["status"], result.info["dual_bound"]
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from fxflow.partitioning.cost import OBJECTIVES, Objective, objective_value
from fxflow.partitioning.errors import PlacementRefused, refuse_if_unplaceable
from fxflow.partitioning.placement import Placement, canonical
from fxflow.partitioning.problem import Problem
from fxflow.partitioning.result import Result


class MilpTimeout(TimeoutError):
    """The solver stopped (time limit) before finding a placement; `dual_bound` is the lowest
    objective any placement can have, as far as it got (None if unknown)."""

    def __init__(self, message: str, dual_bound: float | None):
        super().__init__(message)
        self.dual_bound = dual_bound


class _Model:
    """Variables and sparse rows for scipy's milp."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[int] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, lo: float = 0.0, hi: float = np.inf, integer: bool = False) -> int:
        self.lower.append(lo)
        self.upper.append(hi)
        self.integer.append(1 if integer else 0)
        return len(self.lower) - 1

    def row(self, coeffs: dict[int, float], lo: float = -np.inf, hi: float = np.inf) -> None:
        self.rows.append((coeffs, lo, hi))

    def solve(self, cost: dict[int, float], time_limit_s: float | None):
        n = len(self.lower)
        c = np.zeros(n)
        for i, v in cost.items():
            c[i] = v
        r, k, vals, lo, hi = [], [], [], [], []
        for i, (coeffs, a, b) in enumerate(self.rows):
            for j, v in coeffs.items():
                r.append(i)
                k.append(j)
                vals.append(v)
            lo.append(a)
            hi.append(b)
        matrix = coo_array((vals, (r, k)), shape=(len(self.rows), n)).tocsr()
        options: dict = {"mip_rel_gap": 1e-9}
        if time_limit_s is not None:
            options["time_limit"] = float(time_limit_s)
        args = dict(constraints=[LinearConstraint(matrix, lo, hi)], integrality=np.array(self.integer),
                    bounds=Bounds(self.lower, self.upper))
        # HiGHS (1.x, through scipy) now and then stops with "Solve error" (status 4) on these models;
        # the same model solves without presolve or with the objective scaled, so those are the retries.
        for presolve, factor in ((True, 1.0), (False, 1.0), (True, 2.0), (True, 1000.0)):
            solution = milp(c * factor, options=dict(options, presolve=presolve), **args)
            if solution.status != 4:
                break
        for key in ("fun", "mip_dual_bound"):
            if solution.get(key) is not None:
                solution[key] = solution[key] / factor
        return solution


def milp_partition(problem: Problem, objective: Objective = "latency", time_limit_s: float | None = 60.0,
                   upper_bound: float | None = None) -> Result:
    """Best placement (one partition per device) for `objective`, or the best found in `time_limit_s`.

    `upper_bound`, an objective value some placement is known to reach (say, another
    algorithm's), prunes the search without changing the optimum."""
    started = time.perf_counter()
    refuse_if_unplaceable(problem)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    n, devices = problem.num_nodes, problem.devices
    k = len(devices)
    rate = problem.transfer_rate_bytes_per_sec
    w = problem.weights
    edges = [(u, v) for u, v, _ in problem.edges()]
    moved = sum(problem.output_bytes) + sum(problem.aux_bytes)
    # Times are divided by `scale` so the solver's tolerances are relative to the problem.
    transfer_scale = (1.0 / rate) if rate > 0 else 0.0
    scale = max(sum(w) + k * moved * transfer_scale, 1e-12)
    wt = [x / scale for x in w]
    tt = transfer_scale / scale
    big_path = sum(wt) + 1e-9
    big = sum(wt) + k * moved * tt + 1e-9
    free = [[devices[a].logical_id == devices[b].logical_id for b in range(k)] for a in range(k)]

    m = _Model()
    x = [[m.var(0, 1, integer=True) for _ in range(k)] for _ in range(n)]
    t = [m.var(wt[v], big_path) for v in range(n)]
    lat = [m.var(0, big_path) for _ in range(k)]
    for v in range(n):
        m.row({x[v][d]: 1.0 for d in range(k)}, 1.0, 1.0)
        for d in range(k):  # L[d] >= t[v] when v is on d
            m.row({t[v]: 1.0, lat[d]: -1.0, x[v][d]: big_path}, hi=big_path)
    for u, v in edges:  # t[v] >= t[u] + w[v] when u and v share a device
        same = m.var(0, 1)
        for d in range(k):
            m.row({same: 1.0, x[u][d]: -1.0, x[v][d]: -1.0}, lo=-1.0)
        m.row({t[u]: 1.0, t[v]: -1.0, same: big_path}, hi=big_path - wt[v])

    feeds = {(q, d): m.var(0, 1) for q in range(k) for d in range(k) if q != d}
    for u, v in edges:
        for (q, d), y in feeds.items():
            m.row({y: 1.0, x[u][q]: -1.0, x[v][d]: -1.0}, lo=-1.0)
    crossing: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)  # (q, d) -> bytes terms of the transfer
    for u, users in enumerate(problem.users):
        if not users or not tt:
            continue
        for (q, d) in feeds:
            z = m.var(0, 1)
            for v in users:
                m.row({z: 1.0, x[u][q]: -1.0, x[v][d]: -1.0}, lo=-1.0)
            crossing[q, d][z] = float(problem.output_bytes[u])

    reads = []
    for a, users in enumerate(problem.aux_users):
        per_device = [m.var(0, 1) for _ in range(k)]
        for d in range(k):
            for v in users:
                m.row({per_device[d]: 1.0, x[v][d]: -1.0}, lo=0.0)
        reads.append(per_device)
    aux_crossing: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    if objective == "latency" and tt:
        for a, users in enumerate(problem.aux_users):
            if not users:
                continue
            for (q, d), y in feeds.items():
                s = m.var(0, 1)
                m.row({s: 1.0, reads[a][q]: -1.0, reads[a][d]: -1.0, y: -1.0}, lo=-2.0)
                aux_crossing[q, d][s] = float(problem.aux_bytes[a])

    for d, dev in enumerate(devices):
        budget = float(max(dev.mem_bytes, 1))
        coeffs: dict[int, float] = {x[v][d]: problem.size_bytes[v] / budget for v in range(n)}
        for a in range(len(problem.aux_names)):
            if problem.aux_users[a]:
                coeffs[reads[a][d]] = problem.aux_bytes[a] / budget
        for u, v in edges:
            if problem.output_bytes[u]:
                e = m.var(0, 1)
                m.row({e: 1.0, x[v][d]: -1.0, x[u][d]: 1.0}, lo=0.0)
                coeffs[e] = problem.output_bytes[u] / budget
        m.row(coeffs, hi=dev.mem_bytes / budget)

    groups = _interchangeable(problem)
    group_of = {d: g for g, members in enumerate(groups) for d in members}
    order = [m.var(0, k - 1) for _ in range(k)]
    for (q, d), y in feeds.items():
        if q in group_of and group_of.get(d) == group_of[q]:
            if q > d:  # within a group of interchangeable devices, data flows to higher indices
                m.upper[y] = 0.0
            continue
        m.row({order[d]: 1.0, order[q]: -1.0, y: -float(k)}, lo=1.0 - k)

    lowest = _longest_path(problem) / scale if objective == "latency" else max(wt)
    highest = big if upper_bound is None else min(big, upper_bound / scale * (1 + 1e-9) + 1e-12)
    worst = m.var(lowest, highest)
    if objective == "latency":
        start = [m.var(0, big) for _ in range(k)]
        for (q, d), y in feeds.items():
            row = {start[d]: 1.0, start[q]: -1.0, lat[q]: -1.0, y: -big}
            if not free[q][d] and tt:
                for var, nbytes in list(crossing[q, d].items()) + list(aux_crossing[q, d].items()):
                    row[var] = row.get(var, 0.0) - nbytes * tt
            m.row(row, lo=-big)
        for d in range(k):
            m.row({worst: 1.0, start[d]: -1.0, lat[d]: -1.0}, lo=0.0)
    else:
        for d in range(k):
            row = {worst: 1.0, lat[d]: -1.0}
            for q in range(k):
                if q != d and not free[q][d] and tt:
                    for var, nbytes in crossing[q, d].items():
                        row[var] = row.get(var, 0.0) - nbytes * tt
            m.row(row, lo=0.0)

    solution = m.solve({worst: 1.0}, time_limit_s)
    info = {"status": solution.message, "seconds": time.perf_counter() - started, "variables": len(m.lower),
            "constraints": len(m.rows)}
    if solution.x is None:
        if solution.status == 2:  # infeasible
            raise PlacementRefused(
                f"no placement with one partition per device fits: the MILP is infeasible ({solution.message})",
                "all devices", problem.min_bytes, sum(d.mem_bytes for d in devices),
            )
        if solution.status != 1:
            raise RuntimeError(f"the MILP solver failed: {solution.message}")
        bound = solution.get("mip_dual_bound")
        raise MilpTimeout(f"the MILP found no placement within {time_limit_s} s ({solution.message})",
                          None if bound is None else float(bound) * scale)
    on = [int(np.argmax([solution.x[x[v][d]] for d in range(k)])) for v in range(n)]
    used = sorted(set(on))
    index = {d: i for i, d in enumerate(used)}
    placement = canonical(problem, Placement(tuple(index[d] for d in on), tuple((d,) for d in used)))
    optimal = solution.status == 0
    info["dual_bound"] = float(solution.mip_dual_bound) * scale if solution.mip_dual_bound is not None else None
    info["mip_gap"] = solution.mip_gap
    return Result(placement, "milp", objective, objective_value(problem, placement, objective), optimal=optimal, info=info)


def _interchangeable(problem: Problem) -> list[list[int]]:
    """Groups (of two or more) of devices with the same budget and each a logical id of its own: any
    placement can be relabelled within a group so that data only flows to higher device indices."""
    ids = [d.logical_id for d in problem.devices]
    groups: dict[int, list[int]] = defaultdict(list)
    for d, dev in enumerate(problem.devices):
        if ids.count(dev.logical_id) == 1:
            groups[dev.mem_bytes].append(d)
    return [g for g in groups.values() if len(g) > 1]


def _longest_path(problem: Problem) -> float:
    """The heaviest node path: no placement's critical path is shorter."""
    w = problem.weights
    ending = [0.0] * problem.num_nodes
    for v, preds in enumerate(problem.inputs):
        ending[v] = max((ending[u] for u in preds), default=0.0) + w[v]
    return max(ending, default=0.0)
