"""Spell binary operators one way with torch's `NormalizeOperators` (`torch.add` -> `operator.add`)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch.fx import GraphModule
from torch.fx.experimental.normalize import NormalizeOperators as TorchNormalizeOperators

from fxflow.nodes import qualified_target
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class NormalizeOperatorsFacts(StageFacts):
    """Operator calls torch maps to functions, before and after, and those that remain."""

    torch_operators_before: int
    torch_operators_after: int
    remaining: list[str]


class NormalizeOperators(Transform):
    """Two-argument calls of `torch.add`, `torch.mul`, ... `torch.ge` (the twelve binary operators
    torch maps to Python's magic methods) become `operator.add`, ... `operator.ge`, so later passes
    see one spelling. torch checks only the positional arguments: `torch.add(a, b, alpha=2)` is
    rewritten to `operator.add(a, b)` as well, dropping `alpha`, and then computes something else;
    the equivalence check of a recipe catches that.

        - /transform@transforms.normalize: normalize_operators

    Facts: `torch_operators_before`/`_after` (calls of those torch functions in the given and the
    returned graph) and `remaining` (their qualified targets still present after; [] when all
    were rewritten).
    """

    facts_model: ClassVar = NormalizeOperatorsFacts

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return TorchNormalizeOperators(gm).transform()

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, Any]:
        before, after = _torch_operator_calls(given), _torch_operator_calls(returned)
        return {"torch_operators_before": len(before), "torch_operators_after": len(after),
                "remaining": sorted(set(after))}


def _torch_operator_calls(gm: GraphModule) -> list[str]:
    remap = TorchNormalizeOperators.binary_magic_method_remap
    return [qualified_target(n, {}) for n in gm.graph.nodes if n.op == "call_function" and n.target in remap]
