"""Swap every node of one (op, target) for another with torch's `graph_manipulation.replace_target_nodes_with`."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import model_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.passes import graph_manipulation

from fxflow.config.targets import TargetPolicy, TargetRefused
from fxflow.nodes import FxOp, function_at
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class ReplaceTargetsFacts(StageFacts):
    """How many nodes changed target."""

    replaced: int


class ReplaceTargets(Transform):
    """Replace nodes by op and target; function targets are written as dotted paths.

    Usage in a recipe::

        transforms:
          replace:
            _target_: fxflow.transforms.ReplaceTargets
            old_op: call_function
            old_target: operator.add
            new_op: call_function
            new_target: operator.mul

    The graph then computes something new, so the recipe's check names a reference model
    with the new semantics. Facts: `replaced` (how many nodes changed).

    What the graph will call must stay a pure tensor computation, whatever earlier stages did:
    a new `call_function` target is a tensor function on the target policy's allow list (by
    identity, so `torch.nn.functional.torch.load` is torch.load and refused), a new
    `call_method` target is a tensor method on the same list (never `numpy`, `tolist` or
    storage, so no chain of stages reaches `x.numpy().tofile(path)`), and a new `call_module`
    target is a public attribute name. Old targets are only matched, never called.
    """

    facts_model: ClassVar = ReplaceTargetsFacts

    old_op: FxOp
    old_target: str
    new_op: FxOp
    new_target: str

    @model_validator(mode="after")
    def _targets_resolve(self) -> "ReplaceTargets":
        for field, op, target in (("old_target", self.old_op, self.old_target),
                                  ("new_target", self.new_op, self.new_target)):
            if op == "call_function":
                function_at(target, field, called=field == "new_target")
            elif op == "call_method" and field == "new_target":
                try:
                    TargetPolicy().tensor_method(target)
                except TargetRefused as exc:
                    raise PydanticCustomError("target", "call_method target '{target}' {why} ({accepted})",
                                              {"target": target, "why": exc.message, "accepted": exc.accepted,
                                               "field": field}) from None
            elif not _ATTRIBUTE.fullmatch(target):
                raise PydanticCustomError(
                    "target", "{op} target '{target}' is not a public attribute name (e.g. add, or linear for a "
                    "submodule)", {"op": op, "target": target, "field": field})
        return self

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        old = self._resolve(self.old_op, self.old_target, called=False)
        before = sum(1 for n in gm.graph.nodes if n.op == self.old_op and n.target == old)
        graph_manipulation.replace_target_nodes_with(
            fx_module=gm,
            old_op=self.old_op,
            old_target=old,
            new_op=self.new_op,
            new_target=self._resolve(self.new_op, self.new_target),
        )
        ctx.facts["replaced"] = before
        return gm

    @staticmethod
    def _resolve(op: str, target: str, called: bool = True) -> Any:
        return function_at(target, called=called) if op == "call_function" else target


_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
