"""Probe torch's `type_matches(signature_type, argument_type)` on pairs of type expressions."""

from __future__ import annotations

import typing
from typing import Any, ClassVar

from pydantic import field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.operator_schemas import type_matches

from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform
from fxflow.type_expressions import TypeExpressionError, parse_type


class TypeMatchesFacts(StageFacts):
    """The signature/argument pairs that matched and those that did not."""

    matched: list[str]
    unmatched: list[str]


class TypeMatches(Transform):
    """Does an argument of the second type fit a parameter of the first, by the rules torch uses
    to pick an operator overload? Each pair is two type expressions (see
    `fxflow.type_expressions`: `List[int]`, `Optional[List[torch.Tensor]]`,
    `create_type_hint([int, int])`, `type(torch.float)`), parsed without evaluating code.

        transforms:
          should_match:
            _target_: fxflow.transforms.type_matches.TypeMatches
            pairs: [[int, int], ["List[int]", "create_type_hint([int, int])"]]

    A probe: the module is not changed. Facts: `matched` and `unmatched` (the pairs as written,
    `signature <- argument`), and `parsed`: every pair as the types it was parsed into
    (`typing.List[int] <- list[int]`, see `type_text`), so a recipe can pin that the text means
    the types its torch test writes.
    """

    facts_model: ClassVar = TypeMatchesFacts

    probe: ClassVar[bool] = True

    pairs: list[tuple[str, str]]

    @field_validator("pairs")
    @classmethod
    def _parse(cls, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pair in pairs:
            for text in pair:
                try:
                    parse_type(text)
                except TypeExpressionError as exc:
                    raise PydanticCustomError("type_expression", "{err}", {"err": str(exc)}) from None
        return pairs

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        matched, unmatched, parsed = [], [], []
        for signature, argument in self.pairs:
            words = f"{signature} <- {argument}"
            sig_type, arg_type = parse_type(signature), parse_type(argument)
            (matched if type_matches(sig_type, arg_type) else unmatched).append(words)
            parsed.append(f"{type_text(sig_type)} <- {type_text(arg_type)}")
        ctx.facts.update({"matched": matched, "unmatched": unmatched, "parsed": parsed})
        return gm


def type_text(value: Any) -> str:
    """A type as text that tells types apart: `int`, `torch.nn.parameter.Parameter`, `typing.List[int]`."""
    if isinstance(value, type) and not typing.get_args(value):
        return value.__qualname__ if value.__module__ == "builtins" else f"{value.__module__}.{value.__qualname__}"
    return repr(value)
