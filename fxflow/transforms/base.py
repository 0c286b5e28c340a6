"""The transform interface and the small context each transform receives.

A transform only computes: it gets the current module and a `StageContext` (example inputs,
devices, where its facts go) and returns the next module; the figures about that module are
read from it afterwards (`returned_facts`), so they describe what the stage hands on. It never
writes the run record nor draws a report; the pipeline does both after the stage, from the facts. A step whose product
is files (an export) writes them under `ctx.artifacts`, a folder the pipeline hands it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict
from torch.fx import GraphModule

if TYPE_CHECKING:
    from fxflow.config.schema import DeviceSpec
    from fxflow.inputs import InputSet


@dataclass
class StageContext:
    """What a transform may read, and where its facts go.

    `inputs` are the recipe's example inputs; `devices` the run's device list (each with its
    `name` filled in); `artifacts` the folder for files that are the step's product (created
    by the transform when it writes one); `facts` the JSON facts recorded under the step's name.
    """

    name: str
    inputs: "InputSet"
    devices: list["DeviceSpec"]
    artifacts: Path
    facts: dict[str, Any] = field(default_factory=dict)


class Transform(BaseModel, ABC):
    """One named pipeline step: current module in, next module out.

    Subclasses declare their parameters as pydantic fields (validated from config before
    anything runs) and the graph properties they need and give, so that a misordered
    recipe is refused at validation time:

        requires = ("node_sizes",)   # e.g. partitioning needs sized nodes
        provides = ("node_sizes",)
        invalidates = ("node_sizes",)  # a step that builds a new graph drops its sizes
        uses_devices = True          # the run's device list must not be empty
        probe = True                 # inspects without changing the module: equivalence does not apply
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    invalidates: ClassVar[tuple[str, ...]] = ()
    uses_devices: ClassVar[bool] = False
    probe: ClassVar[bool] = False

    @abstractmethod
    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule | Callable[..., Any]:
        """Return the next module; record facts in `ctx.facts`."""

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        """Facts read from the module the stage returns (`given` is the module it received).

        Figures about the result (submodules, node counts, placement, layer counts) belong here,
        not in `apply`: read from what the stage hands on, they cannot describe an intermediate
        object the stage computed and then dropped."""
        return {}

    def run(self, gm: GraphModule, ctx: StageContext) -> GraphModule | Callable[..., Any]:
        """What the pipeline calls: `apply`, then the facts read from the module it returned."""
        out = self.apply(gm, ctx)
        ctx.facts.update(self.returned_facts(gm, out))
        return out
