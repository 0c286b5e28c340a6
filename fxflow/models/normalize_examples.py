"""Modules from torch's normalization and type-annotation tests; each docstring names its test.

No `from __future__ import annotations` here: the type passes read `forward`'s annotations as
types, and postponed evaluation would turn them into strings.
"""

from typing import Any, List, NamedTuple, Sequence, Tuple

import torch
from torch import nn

# The twelve binary operators of test_normalize_binary_operators, by their name in `torch`.
BINARY_OPERATORS = ("add", "mul", "sub", "div", "floor_divide", "remainder", "eq", "ne", "lt", "le", "gt", "ge")


class BinaryOperators(nn.Module):
    """Each of `ops` called tensor-tensor, `op(x, y)`, and tensor-scalar, `op(x, scalar)`
    (test_normalize_binary_operators: the twelve ops, scalar 42). Returns the results in that order.

    The torch test traces one wrapper module per op and call form; one module holding all of them gives
    the same graph nodes (one `torch.<op>` call each) in a single trace.
    """

    def __init__(self, ops: Sequence[str] = BINARY_OPERATORS, scalar: float = 42) -> None:
        super().__init__()
        unknown = [op for op in ops if op not in BINARY_OPERATORS]
        if unknown:
            raise ValueError(f"not binary operators of the normalization test: {unknown}; "
                             f"pick from {', '.join(BINARY_OPERATORS)}")
        self.ops = [getattr(torch, op) for op in ops]
        self.scalar = scalar

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tensor_tensor = [op(x, y) for op in self.ops]
        tensor_scalar = [op(x, self.scalar) for op in self.ops]
        return tuple(tensor_tensor + tensor_scalar)


class AddConstant(nn.Module):
    """torch.add(a, 3) (test_normalize_args_preserve_meta)."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return torch.add(a, 3)


class AddListItems(nn.Module):
    """torch.add(a[0], a[1]) with `a: List[torch.Tensor]` (test_normalize_args_perserve_type):
    the placeholder's annotation must survive normalization."""

    def forward(self, a: List[torch.Tensor]) -> torch.Tensor:  # noqa: UP006 - the torch test's typing.List
        return torch.add(a[0], a[1])


class CustomType:
    """An opaque user type (test_annotate_getitem_node). The torch test's is empty because it only
    traces; this one holds a value and adds like it, so the traced module can also be run and
    proven equal to the eager one."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __add__(self, other: Any) -> Any:
        return self.value + other

    def __radd__(self, other: Any) -> Any:
        return other + self.value


class CustomNamedTuple(NamedTuple):
    """A named tuple input of test_annotate_getitem_node."""

    x: int
    y: float


class GetitemInputs(nn.Module):
    """Indexes a typed tuple and list and reads named-tuple fields (test_annotate_getitem_node):
    tracing loses the element types of the three `getitem` nodes; `annotate_getitem_nodes`
    recovers them from the placeholders' annotations."""

    def forward(self, inp: Tuple[CustomType, torch.Tensor], inp2: List[CustomType],  # noqa: UP006
                inp3: CustomNamedTuple) -> Any:
        inp_0 = inp[0]
        inp_1 = inp[1]
        inp2_0 = inp2[0]
        inp3_x = inp3.x
        inp3_y = inp3.y
        return inp_0 + inp_1 + inp2_0 + inp3_x + inp3_y
