"""Errors the partitioner raises, and the up-front check that says which node or budget cannot fit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fxflow.partitioning.problem import Problem


class InvalidPlacement(ValueError):
    """A placement breaks a rule (node unplaced, partition without device, device over budget, cycle)."""


class PlacementRefused(RuntimeError):
    """No placement fits. `blocker` names the node or device budget that does not fit,
    `needed_bytes` / `available_bytes` the figures, `short_bytes` the difference."""

    def __init__(self, message: str, blocker: str, needed_bytes: int, available_bytes: int):
        super().__init__(message)
        self.blocker = blocker
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes

    @property
    def short_bytes(self) -> int:
        return self.needed_bytes - self.available_bytes

    def facts(self) -> dict:
        return {"explanation": str(self), "blocker": self.blocker, "needed_bytes": self.needed_bytes,
                "available_bytes": self.available_bytes, "short_bytes": self.short_bytes}


def refuse_if_unplaceable(problem: "Problem") -> None:
    """Raise `PlacementRefused` when no placement can exist: no devices, no compute node, a node
    (with the inputs and constants it reads) larger than the largest device, or the graph larger
    than all devices together."""
    if not problem.devices:
        raise PlacementRefused("the device list is empty", "devices", problem.min_bytes, 0)
    if problem.num_nodes == 0:
        raise PlacementRefused("the graph has no compute node to place", "graph", 0, 0)
    biggest = max(problem.devices, key=lambda d: d.mem_bytes)
    own = [problem.size_bytes[v] + sum(problem.aux_bytes[a] for a in problem.aux_inputs[v]) for v in range(problem.num_nodes)]
    worst = max(range(problem.num_nodes), key=own.__getitem__)
    if own[worst] > biggest.mem_bytes:
        raise PlacementRefused(
            f"node '{problem.names[worst]}' needs {own[worst]} B (with the placeholders and constants it reads) but the largest "
            f"device, {biggest.name}, has {biggest.mem_bytes} B: short by {own[worst] - biggest.mem_bytes} B",
            problem.names[worst], own[worst], biggest.mem_bytes,
        )
    total = sum(d.mem_bytes for d in problem.devices)
    if problem.min_bytes > total:
        budgets = ", ".join(f"{d.name} {d.mem_bytes} B" for d in problem.devices)
        raise PlacementRefused(
            f"the graph needs at least {problem.min_bytes} B but the devices hold {total} B together ({budgets}): "
            f"short by {problem.min_bytes - total} B",
            "all devices", problem.min_bytes, total,
        )
