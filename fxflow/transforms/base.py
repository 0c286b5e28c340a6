"""The transform interface and the context each transform receives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch.fx import GraphModule

if TYPE_CHECKING:
    from fxflow.record.writer import RunRecord
    from fxflow.config.schema import DeviceSpec


# Nodes that hold inputs, constants or the result rather than computing something.
NON_COMPUTE_OPS = frozenset({"placeholder", "get_attr", "output"})


@dataclass
class StageContext:
    """What a transform may read (inputs, devices, earlier facts) and where it writes (its facts, the record)."""

    name: str
    model: torch.nn.Module | Any
    inputs: list[Any]
    devices: list["DeviceSpec"]
    seed: int
    earlier_facts: dict[str, dict[str, Any]]
    record: "RunRecord"
    facts: dict[str, Any] = field(default_factory=dict)


class Transform(BaseModel, ABC):
    """One named pipeline step: current GraphModule in, next GraphModule out.

    Subclasses declare their parameters as pydantic fields (validated from config before
    anything runs) and the graph properties they need and give, so that a misordered
    recipe is refused at validation time:

        requires = ("node_sizes",)   # e.g. partitioning needs sized nodes
        provides = ("node_sizes",)
        invalidates = ("node_sizes",)  # a step that builds a new graph drops its sizes
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    invalidates: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        """Return the transformed module; record facts in `ctx.facts`."""

    def report(self, facts: dict[str, Any]) -> list[Any]:
        """Rich renderables for the terminal summary (none by default)."""
        return []
