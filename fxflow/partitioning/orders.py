"""Topological orders of a problem's nodes, and the problem renumbered in one of them.

A contiguous split depends on the order it cuts: in graph order parallel branches follow one
another, so a split runs them one after the other; ordered by earliest start time, a split
cuts every branch at the same depth and keeps them side by side in each partition.

    order = earliest_start_order(problem)
    renumbered = permuted(problem, order)        # node i of `renumbered` is node order[i]
"""

from __future__ import annotations

from typing import Callable, Sequence

from fxflow.partitioning.problem import Problem


def graph_order(problem: Problem) -> list[int]:
    return list(range(problem.num_nodes))


def earliest_start_order(problem: Problem) -> list[int]:
    """Nodes by the longest path (node weights) that must finish before they start, then graph order."""
    start = [0.0] * problem.num_nodes
    w = problem.weights
    for v, preds in enumerate(problem.inputs):
        if preds:
            start[v] = max(start[u] + w[u] for u in preds)
    return sorted(range(problem.num_nodes), key=lambda v: (start[v], v))


def upward_rank_order(problem: Problem) -> list[int]:
    """HEFT's order: longest path (weights and transfers) from a node to the end, largest first."""
    rank = upward_ranks(problem)
    return sorted(range(problem.num_nodes), key=lambda v: (-rank[v], v))


def upward_ranks(problem: Problem) -> list[float]:
    rate = problem.transfer_rate_bytes_per_sec
    w = problem.weights
    rank = [0.0] * problem.num_nodes
    for v in reversed(range(problem.num_nodes)):
        comm = problem.output_bytes[v] / rate if rate > 0 else 0.0
        rank[v] = w[v] + max((comm + rank[s] for s in problem.users[v]), default=0.0)
    return rank


def downward_rank_order(problem: Problem) -> list[int]:
    """Reverse topological: longest path (weights and transfers) from the start to a node, largest
    first, so the end of the graph comes first and, among parallel branches, the longest."""
    rate = problem.transfer_rate_bytes_per_sec
    w = problem.weights
    rank = [0.0] * problem.num_nodes
    for v, preds in enumerate(problem.inputs):
        rank[v] = w[v] + max(((problem.output_bytes[u] / rate if rate > 0 else 0.0) + rank[u] for u in preds), default=0.0)
    return sorted(range(problem.num_nodes), key=lambda v: (-rank[v], -v))


ORDERS: dict[str, Callable[[Problem], list[int]]] = {
    "graph": graph_order,
    "earliest_start": earliest_start_order,
    "upward_rank": upward_rank_order,
}
# Orders that place the end of the graph first (for list scheduling, not for contiguous splits).
REVERSE_ORDERS: dict[str, Callable[[Problem], list[int]]] = {"downward_rank": downward_rank_order}


def permuted(problem: Problem, order: Sequence[int]) -> Problem:
    """The same problem with node `order[i]` renumbered i (`order` must be topological)."""
    new_index = {v: i for i, v in enumerate(order)}
    return Problem(
        tuple(problem.names[v] for v in order),
        tuple(problem.size_bytes[v] for v in order),
        tuple(problem.output_bytes[v] for v in order),
        tuple(problem.mem_latency[v] for v in order),
        tuple(problem.compute_latency[v] for v in order),
        tuple(tuple(new_index[u] for u in problem.inputs[v]) for v in order),
        tuple(problem.aux_inputs[v] for v in order),
        problem.aux_names,
        problem.aux_bytes,
        problem.devices,
        problem.transfer_rate_bytes_per_sec,
    )
