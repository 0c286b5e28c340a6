"""Probe torch's `type_matches(signature_type, argument_type)` on pairs of type expressions."""

from __future__ import annotations

from typing import ClassVar

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

    A probe: the module is not changed. Facts: `matched` and `unmatched` (the pairs, written
    `signature <- argument`).
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
        matched, unmatched = [], []
        for signature, argument in self.pairs:
            words = f"{signature} <- {argument}"
            (matched if type_matches(parse_type(signature), parse_type(argument)) else unmatched).append(words)
        ctx.facts.update({"matched": matched, "unmatched": unmatched})
        return gm
