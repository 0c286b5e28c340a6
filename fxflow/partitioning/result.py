"""What every algorithm returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fxflow.partitioning.placement import Placement


@dataclass(frozen=True)
class Result:
    """A placement (canonical: partition ids 0..k-1 in topological order, one device each) and how it was found.

    `value` is the objective the algorithm minimised (torch's critical path for "latency", the
    slowest stage for "throughput"); `optimal` says whether the algorithm proved it optimal in
    its own search space (contiguous splits for the dynamic program, all placements with one
    partition per device for the MILP), None when it does not know; `info` holds the rest
    (solver status, the pipeline latency the dynamic program minimised, seconds taken).
    """

    placement: Placement
    algorithm: str
    objective: str
    value: float
    optimal: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)
