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

from pydantic import BaseModel, ConfigDict, ValidationError
from torch.fx import GraphModule

from fxflow.lazy_code import compile_now
from fxflow.stages import GRAPH, GraphProperty, ModuleKind, StageFacts, kind_of
from fxflow.steps import RunStep

if TYPE_CHECKING:
    from fxflow.config.schema import DeviceSpec
    from fxflow.inputs import InputSet


class BrokenContract(RuntimeError):
    """A transform returned another kind of module than it declares, or facts that do not fit its model."""


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
    anything runs), the kind of module they take and give, the model of the facts they record,
    and the graph properties they need and give, so that a misordered recipe is refused at
    validation time (fxflow.stages says how kinds chain):

        takes = GRAPH                # the default: a GraphModule (a placed one counts too)
        gives = SCRIPTED             # the default is GRAPH; None returns what it got (a probe)
        facts_model = ScriptFacts    # a StageFacts model; what it names must be recorded
        requires = (GraphProperty.NODE_SIZES,)  # e.g. partitioning needs sized nodes
        provides = (GraphProperty.NODE_SIZES,)
        invalidates = (GraphProperty.NODE_SIZES,)  # a step that builds a new graph drops its sizes
        uses_devices = True          # the run's device list must not be empty
        probe = True                 # inspects without changing the module: equivalence does not apply
        reads_graph = True           # reads gm.graph and gm's attributes, or calls gm; never hands gm to a
                                     # tool that reads its compiled forward (script, re-trace), so gm's
                                     # forward need not be compiled before it (fxflow.lazy_code)
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    takes: ClassVar[ModuleKind] = GRAPH
    gives: ClassVar[ModuleKind | None] = GRAPH
    facts_model: ClassVar[type[BaseModel]] = StageFacts
    requires: ClassVar[tuple[GraphProperty, ...]] = ()
    provides: ClassVar[tuple[GraphProperty, ...]] = ()
    invalidates: ClassVar[tuple[GraphProperty, ...]] = ()
    uses_devices: ClassVar[bool] = False
    probe: ClassVar[bool] = False
    reads_graph: ClassVar[bool] = False

    @classmethod
    def gives_for(cls, received: ModuleKind) -> ModuleKind:
        """The kind this step returns when given `received`: a probe returns what it got."""
        return received if cls.probe or cls.gives is None else cls.gives

    def ensures(self, received: ModuleKind, out: Any, facts: dict[str, Any]) -> StageFacts:
        """Check the stage kept its declared contract (the kind it returned, the facts it recorded)
        and give its facts typed; BrokenContract says what does not hold."""
        declared = self.gives_for(received)
        if not kind_of(out).is_a(declared):
            raise BrokenContract(f"{type(self).__name__} declares that it gives {declared.words}, but it returned "
                                 f"{kind_of(out).words} ({type(out).__name__})")
        try:
            return self.facts_model.model_validate(facts)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BrokenContract(f"{type(self).__name__} recorded facts that do not fit {self.facts_model.__name__}: "
                                 f"{where}: {first['msg']}") from None

    def step(self, name: str) -> RunStep:
        """This stage as a step of the run, for a failure message naming its config key."""
        return RunStep(name, f"transforms.{name}", f"transforms.{name} ({type(self).__name__})")

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
        """What the pipeline calls: `apply`, then the facts read from the module it returned.
        A module compiled on its first call (`fxflow.lazy_code`) is compiled first unless the step
        only reads its graph."""
        if not self.reads_graph:
            compile_now(gm)
        out = self.apply(gm, ctx)
        ctx.facts.update(self.returned_facts(gm, out))
        return out
