"""What passes between stages: the kind of module each takes and gives, and its typed facts.

A transform declares `takes` (the kind it can work on), `gives` (the kind it returns; None when
it returns what it got, as a probe does) and `facts` (a `StageFacts` model of what it records).
Planning refuses an order whose kinds do not chain before anything runs (`script` then `fuse`:
fuse needs a GraphModule, script gives a TorchScript module); the runner checks that every
stage returned the kind it declared and that its facts fit its model; reports are chosen by the
type of a stage's facts.

Kinds form a tree: a module placed on devices is a GraphModule, a GraphModule is an nn.Module,
so a step that takes a GraphModule also takes a placed one (and gives a plain GraphModule back:
it does not carry the placement on).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch.fx import GraphModule

from fxflow.partitioning.facts import partition_facts_of


@dataclass(frozen=True)
class ModuleKind:
    """One kind of stage module; `parent` is the kind it also counts as."""

    name: str
    words: str  # how messages name it: "a GraphModule"
    parent: ModuleKind | None = None

    def is_a(self, other: ModuleKind) -> bool:
        kind: ModuleKind | None = self
        while kind is not None:
            if kind == other:
                return True
            kind = kind.parent
        return False


CALLABLE = ModuleKind("callable", "a callable")
MODULE = ModuleKind("module", "an nn.Module", CALLABLE)
SCRIPTED = ModuleKind("scripted", "a TorchScript module", MODULE)
GRAPH = ModuleKind("graph", "a GraphModule", MODULE)
PLACED = ModuleKind("placed", "a GraphModule split into partitions placed on devices", GRAPH)
DISTRIBUTED = ModuleKind("distributed", "partitions running on worker processes", CALLABLE)
KINDS = {kind.name: kind for kind in (CALLABLE, MODULE, SCRIPTED, GRAPH, PLACED, DISTRIBUTED)}


def kind_of(module: Any) -> ModuleKind:
    """The most specific kind `module` is; a class may name its own (`module_kind = "distributed"`)."""
    declared = getattr(type(module), "module_kind", None)
    if declared in KINDS:
        return KINDS[declared]
    if isinstance(module, GraphModule):
        return PLACED if partition_facts_of(module) is not None else GRAPH
    if isinstance(module, torch.jit.ScriptModule):
        return SCRIPTED
    if isinstance(module, torch.nn.Module):
        return MODULE
    return CALLABLE


class GraphProperty(Enum):
    """Something a graph may carry that a later step needs (`requires`), a step adds (`provides`)
    or a step that builds a new graph drops (`invalidates`): named once here, so a misspelt
    property fails at import instead of never being provided."""

    NODE_SIZES = "node_sizes"  # node.size_bytes, as torch's sizing pass leaves them


class StageFacts(BaseModel):
    """The facts every stage may record; a transform's own model names the rest.

    Extra keys are allowed (a stage may record more than its model names, and the record keeps
    all of it); what the model names must be there with the declared type.
    """

    model_config = ConfigDict(extra="allow")

    graph: dict[str, Any] | None = None  # the runner's graph facts of the stage's module
