"""Compile the current module with `torch.jit.script`: a non-GraphModule stage, checked like any other."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch.fx import GraphModule

from fxflow.stages import SCRIPTED, StageFacts
from fxflow.transforms.base import StageContext, Transform


class ScriptFacts(StageFacts):
    """The scripted module's class and how many warnings torch emitted."""

    module: str
    warnings: int


class Script(Transform):
    """TorchScript the module. Scripting needs every value's type, so it is the proof that a type
    annotation pass left nothing TorchScript cannot resolve; the scripted module is then checked
    for equivalence with the reference like any other stage.

        - /transform@transforms.script: script

    Facts: `module` (the returned module's class), `warnings` (how many torch emitted; torch.jit
    is deprecated in favour of torch.compile/torch.export and says so on every call).
    """

    facts_model: ClassVar = ScriptFacts

    gives: ClassVar = SCRIPTED

    def apply(self, gm: GraphModule, ctx: StageContext) -> torch.jit.ScriptModule:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scripted = torch.jit.script(gm)
        ctx.facts["warnings"] = len(caught)
        return scripted

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        return {"module": f"{type(returned).__module__}.{type(returned).__qualname__}"}
