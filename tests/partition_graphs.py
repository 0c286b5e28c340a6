"""Random graphs for the partitioning tests: plain problems (no torch) and real fx modules.

    problems(max_nodes=8, max_devices=3)     # hypothesis strategy of Problem
    fx_modules(max_nodes=10)                 # hypothesis strategy of (GraphModule, example inputs)
    brute_force_latency(problem, placement)  # torch's path-by-path definition, written out again
"""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import strategies as st
from torch import nn
from torch.fx import Graph, GraphModule

from fxflow.partitioning import Device, Placement, Problem
from fxflow.partitioning.placement import check_placement, partition_graph
from fxflow.partitioning.errors import InvalidPlacement


@st.composite
def problems(draw, max_nodes: int = 8, max_devices: int = 3, min_nodes: int = 1, equal_devices: bool | None = None) -> Problem:
    n = draw(st.integers(min_nodes, max_nodes))
    inputs = []
    for v in range(n):
        preds = draw(st.lists(st.integers(0, v - 1), max_size=min(3, v), unique=True)) if v else []
        inputs.append(tuple(sorted(preds)))
    num_aux = draw(st.integers(0, 2))
    aux_inputs = [tuple(sorted(draw(st.lists(st.integers(0, num_aux - 1), max_size=num_aux, unique=True)))) if num_aux else ()
                  for _ in range(n)]
    sizes = [draw(st.integers(1, 20)) for _ in range(n)]
    outputs = [draw(st.integers(1, s)) for s in sizes]
    mem = [float(draw(st.integers(0, 9))) for _ in range(n)]
    compute = [float(draw(st.integers(0, 9))) for _ in range(n)]
    total = sum(sizes)
    k = draw(st.integers(1, max_devices))
    same = draw(st.booleans()) if equal_devices is None else equal_devices
    if same:
        budget = draw(st.integers(max(1, total // k), 2 * total))
        budgets = [budget] * k
    else:
        budgets = [draw(st.integers(max(1, total // k), 2 * total)) for _ in range(k)]
    devices = tuple(Device(f"dev_{i}", b, i) for i, b in enumerate(budgets))
    rate = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return Problem(tuple(f"n{i}" for i in range(n)), tuple(sizes), tuple(outputs), tuple(mem), tuple(compute),
                   tuple(inputs), tuple(aux_inputs), tuple(f"a{j}" for j in range(num_aux)),
                   tuple(draw(st.integers(1, 5)) for _ in range(num_aux)), devices, rate)


def draw_acyclic_placement(problem: Problem, data) -> Placement:
    """One partition per device a random assignment uses; `assume` rejects one whose partitions
    would feed each other in a cycle (split_module cannot build those)."""
    from hypothesis import assume

    from fxflow.partitioning.placement import topological_partitions

    k = len(problem.devices)
    assign = [data.draw(st.integers(0, k - 1)) for _ in range(problem.num_nodes)]
    used = sorted(set(assign))
    placement = Placement(tuple(used.index(d) for d in assign), tuple((d,) for d in used))
    firsts = [placement.partition_of.index(p) for p in range(placement.num_partitions)]
    assume(topological_partitions(partition_graph(problem, placement), firsts) is not None)
    return placement


def all_placements(problem: Problem, contiguous: bool = False):
    """Every valid placement with one partition per device (or every contiguous split of graph order)."""
    n, k = problem.num_nodes, len(problem.devices)
    if contiguous:
        for parts in range(1, min(n, k) + 1):
            for cuts in itertools.combinations(range(1, n), parts - 1):
                bounds = (0, *cuts, n)
                partition_of = tuple(i for i in range(parts) for _ in range(bounds[i], bounds[i + 1]))
                for devices in itertools.permutations(range(k), parts):
                    yield from _valid(problem, Placement(partition_of, tuple((d,) for d in devices)))
        return
    for assign in itertools.product(range(k), repeat=n):
        used = sorted(set(assign))
        index = {d: i for i, d in enumerate(used)}
        yield from _valid(problem, Placement(tuple(index[d] for d in assign), tuple((d,) for d in used)))


def _valid(problem: Problem, placement: Placement):
    try:
        check_placement(problem, placement)
    except InvalidPlacement:
        return
    yield placement


def brute_force_latency(problem: Problem, placement: Placement) -> tuple[list[float], float]:
    """Partition latencies and critical path by walking every path, as torch's helpers do."""
    part = placement.partition_of
    w = problem.weights

    def longest_from(v: int) -> float:
        nexts = [s for s in problem.users[v] if part[s] == part[v]]
        return w[v] + max((longest_from(s) for s in nexts), default=0.0)

    latencies = [0.0] * placement.num_partitions
    for v in range(problem.num_nodes):
        latencies[part[v]] = max(latencies[part[v]], longest_from(v))
    graph = partition_graph(problem, placement)
    rate = problem.transfer_rate_bytes_per_sec

    def path_from(p: int) -> float:
        def comm(c: int) -> float:
            same = placement.logical_device_ids(problem, p) == placement.logical_device_ids(problem, c)
            return 0.0 if same else graph.comm_bytes[p, c] / rate
        return latencies[p] + max((comm(c) + path_from(c) for c in graph.children[p]), default=0.0)

    return latencies, max(path_from(p) for p in range(placement.num_partitions) if not graph.parents[p])


def longest_path_triples(problem: Problem, placement: Placement, p: int) -> set[tuple[float, float, float]]:
    """(overall, mem, compute) of every longest path inside partition p, summed from its top as torch does."""
    part = placement.partition_of
    found = set()

    def walk(v: int, overall: float, mem: float, compute: float) -> None:
        overall += problem.weight(v)
        mem += problem.mem_latency[v]
        compute += problem.compute_latency[v]
        nexts = [s for s in problem.users[v] if part[s] == p]
        if not nexts:
            found.add((overall, mem, compute))
        for s in nexts:
            walk(s, overall, mem, compute)

    for v in range(problem.num_nodes):
        if part[v] == p and not any(part[u] == p for u in problem.inputs[v]):
            walk(v, 0.0, 0.0, 0.0)
    top = max(t[0] for t in found)
    return {t for t in found if t[0] == top}


def best_by_enumeration(problem: Problem, measure, contiguous: bool = False) -> float:
    return min((measure(problem, p) for p in all_placements(problem, contiguous)), default=math.inf)


# -- real fx modules ---------------------------------------------------------------------------

_BINARY = (torch.add, torch.mul, torch.sub)
_UNARY = (torch.relu, torch.tanh)


@st.composite
def fx_modules(draw, max_nodes: int = 10):
    """A random GraphModule of element-wise ops, Linear layers and stored constants on [2, 4]
    tensors, and two example inputs."""
    root = nn.Module()
    graph = Graph()
    values = [graph.placeholder("x"), graph.placeholder("y")]
    for j in range(draw(st.integers(0, 2))):
        root.register_buffer(f"c{j}", torch.randn(2, 4))
        values.append(graph.get_attr(f"c{j}"))
    used = set()
    for i in range(draw(st.integers(1, max_nodes))):
        kind = draw(st.sampled_from(["binary", "unary", "linear"]))
        a = draw(st.sampled_from(values))
        if kind == "binary":
            b = draw(st.sampled_from(values))
            node = graph.call_function(draw(st.sampled_from(_BINARY)), (a, b))
            used.update({a, b})
        elif kind == "unary":
            node = graph.call_function(draw(st.sampled_from(_UNARY)), (a,))
            used.add(a)
        else:
            root.add_module(f"lin{i}", nn.Linear(4, 4))
            node = graph.call_module(f"lin{i}", (a,))
            used.add(a)
        values.append(node)
    sinks = [v for v in values if v not in used and v.op not in ("placeholder", "get_attr")]
    graph.output(tuple(sinks) if len(sinks) > 1 else sinks[0])
    gm = GraphModule(root, graph)
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    return gm, [torch.randn(2, 4, generator=gen), torch.randn(2, 4, generator=gen)]

