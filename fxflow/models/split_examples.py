"""Models of the torch tests on `split_module`; each docstring names the test it comes from.
(test_subgraph_trivial_resnet splits ResNet-18: fxflow.models.resnet.)"""

from __future__ import annotations

import torch
from torch import nn


class ParamLinearClamp(nn.Module):
    """A parameter, one Linear used twice, clamps and a sum (test_subgraph_creation)."""

    def __init__(self) -> None:
        super().__init__()
        self.param = nn.Parameter(torch.rand(3, 4))
        self.linear = nn.Linear(4, 5)

    def forward(self, x, y):
        z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
        w = self.linear(y).clamp(min=0.0, max=1.0)
        return z + w


class ModWithDeadCode(nn.Module):
    """x * 2, beside an unused x + 2 that tracing keeps (test_split_module_dead_code)."""

    def forward(self, x):
        output = x * 2
        dead_line = x + 2  # noqa: F841 - the dead node is the point
        return output


class ModuleWithKwargsExpansion(nn.Module):
    """x + kwargs['foo']: a `**kwargs` forward (test_split_module_kwargs_expansion)."""

    def forward(self, x, **kwargs):
        return x + kwargs["foo"]


class ModelToTrace(nn.Module):
    """Linear(512, 512), plus `targets` when given: traced with targets=None as a concrete
    argument (test_split_module_default_arg)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(512, 512)

    def forward(self, x, targets=None):
        x = self.lin(x)
        if targets is not None:
            x = x + targets
        return x


class AddsAroundLinear(nn.Module):
    """Sums named like the nodes fx generates (`add_1` is fx's `add`), around a Linear
    (test_subgraph_uniquename)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, a, b, c, d):
        add_1 = a + b
        add_2 = add_1 + c
        linear_1 = self.linear(add_1)
        add_3 = add_2 + d
        add_4 = add_2 + linear_1
        add_5 = add_3 + add_4
        return add_5


class ExampleCode(nn.Module):
    """Matrix products with two parameters and one Linear called twice (test_split_qualname_mapping)."""

    def __init__(self, d_hid: int = 4) -> None:
        super().__init__()
        self.mm_param = nn.Parameter(torch.randn(d_hid, d_hid))
        self.mm_param2 = nn.Parameter(torch.randn(d_hid, d_hid))
        self.lin = nn.Linear(d_hid, d_hid)

    def forward(self, x):
        x = torch.mm(x, self.mm_param)
        x = torch.relu(x)
        x = torch.mm(x, self.mm_param)
        x = self.lin(x)
        x = torch.relu(x)
        x = torch.mm(x, self.mm_param2)
        x = self.lin(x)
        return x
