"""Rewrite call arguments to keyword form with torch's `NormalizeArgs`, after shape propagation if asked."""

from __future__ import annotations

from typing import ClassVar

import copy
from collections import Counter
from typing import Any

import torch
from torch.fx import GraphModule, Node
from torch.fx.experimental.normalize import NormalizeArgs as TorchNormalizeArgs
from torch.fx.passes.shape_prop import ShapeProp

from fxflow.nodes import qualified_target, type_name
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class NormalizeArgsFacts(StageFacts):
    """Calls with positional arguments before and after, which remain, and the placeholders' types."""

    positional_before: int
    positional_after: int
    with_positional_args: list[str]
    placeholder_types: dict[str, str | None]


class NormalizeArgs(Transform):
    """Match each call's arguments to its signature and pass them by keyword (with defaults
    filled in), for function calls and torch.nn modules.

        - /transform@transforms.normalize_args: normalize_args
        transforms.normalize_args.shape_prop=true

    Builtin functions (`torch.conv2d`) have overloads; torch picks one from the arguments' types,
    which `shape_prop: true` records first (torch's `ShapeProp` on the recipe's inputs). Node
    `meta` and placeholder type annotations are carried over.

    Facts: `positional_before`/`positional_after` (how many function and torch.nn module calls
    pass arguments by position in the given and the returned graph) and `with_positional_args`
    (their qualified targets after), `placeholder_types` (each placeholder's annotation after).
    """

    facts_model: ClassVar = NormalizeArgsFacts

    shape_prop: bool = False
    normalize_to_only_use_kwargs: bool = True

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        if self.shape_prop:
            gm = copy.deepcopy(gm)  # ShapeProp writes into node.meta; the incoming stage stays as it was
            ShapeProp(gm).propagate(*ctx.inputs.args)
        return TorchNormalizeArgs(gm, self.normalize_to_only_use_kwargs).transform()

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, Any]:
        before, after = _positional_calls(given), _positional_calls(returned)
        return {
            "positional_before": sum(before.values()),
            "positional_after": sum(after.values()),
            "with_positional_args": sorted(after),
            "placeholder_types": {n.name: type_name(n.type) for n in returned.graph.nodes if n.op == "placeholder"},
        }


def _positional_calls(gm: GraphModule) -> Counter[str]:
    """Qualified target -> calls passing positional arguments, over function calls and modules
    of torch.nn's own classes (what NormalizeArgs can normalize)."""
    modules = dict(gm.named_modules())
    return Counter(qualified_target(n, modules) for n in gm.graph.nodes if n.args and _normalizable(n, modules))


def _normalizable(node: Node, modules: dict[str, torch.nn.Module]) -> bool:
    if node.op == "call_function":
        return True
    if node.op == "call_module":
        cls = type(modules[node.target])
        return getattr(torch.nn, cls.__name__, None) is cls
    return False
