"""Probe torch's `normalize_function` on one operator and given arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.operator_schemas import normalize_function

from fxflow.config.schema import InputSpec
from fxflow.config.targets import TargetPolicy, TargetRefused
from fxflow.inputs import make_inputs
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class NormalizeFunctionFacts(StageFacts):
    """Whether torch normalized the call; if so, how many args remain, the kwargs and where each came from."""

    normalized: bool
    args: int | None = None
    kwargs: list[str] | None = None
    kwargs_from: dict[str, str] | None = None


class NormalizeFunction(Transform):
    """Match `args`/`kwargs` to the signature or schema of `target` (a `torch.` dotted path:
    `torch.ops.aten.resize_as_.default`, `torch.ops.quantized.embedding_bag_byte_rowwise_offsets`)
    and report how torch normalized them. The arguments are declared like model inputs and the
    target is never called.

        transforms:
          overload:
            _target_: fxflow.transforms.normalize_function.NormalizeFunction
            target: torch.ops.aten.resize_as_.default
            args: [{shape: [1]}]
            kwargs: {the_template: {shape: [4]}}

    A probe: the module is not changed. Facts: `normalized` (torch found a match), `args` (how
    many positional arguments remain), `kwargs` (the keyword names, in order) and `kwargs_from`
    (for each keyword whose value is one of the given objects, which one: `args.0`,
    `kwargs.the_template`); identity, not equality, as torch's test checks.
    """

    facts_model: ClassVar = NormalizeFunctionFacts

    probe: ClassVar[bool] = True

    target: str
    args: list[InputSpec] = []
    kwargs: dict[str, InputSpec] = {}
    normalize_to_only_use_kwargs: bool = True

    @field_validator("target")
    @classmethod
    def _torch_target(cls, target: str) -> str:
        try:  # by the target policy: walked from torch without importing, never called
            TargetPolicy().torch_operator(target)
        except TargetRefused as exc:
            raise PydanticCustomError("target", "'{target}' {why}; write {accepted}",
                                      {"target": target, "why": exc.message, "accepted": exc.accepted}) from None
        return target

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        given = make_inputs({**{f"args.{i}": spec for i, spec in enumerate(self.args)},
                             **{f"kwargs.{k}": spec for k, spec in self.kwargs.items()}}, seed=0)
        args = tuple(given[f"args.{i}"] for i in range(len(self.args)))
        kwargs = {k: given[f"kwargs.{k}"] for k in self.kwargs}
        result = normalize_function(TargetPolicy().torch_operator(self.target), args, kwargs,
                                    normalize_to_only_use_kwargs=self.normalize_to_only_use_kwargs)
        ctx.facts["normalized"] = result is not None
        if result is not None:
            origin = {name: _which(value, given) for name, value in result.kwargs.items()}
            ctx.facts.update({"args": len(result.args), "kwargs": list(result.kwargs),
                              "kwargs_from": {name: where for name, where in origin.items() if where}})
        return gm


def _which(value: Any, given: Mapping[str, Any]) -> str | None:
    """Which given tensor `value` is (by identity); literals are not tracked (small ints are shared)."""
    if not isinstance(value, torch.Tensor):
        return None
    return next((name for name, obj in given.items() if obj is value), None)
