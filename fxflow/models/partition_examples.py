"""Small modules from torch's partitioner tests; each docstring names the test it comes from.

Several draw `torch.rand(4)` inside forward: symbolic tracing freezes those values as graph
constants (`_tensor_constant0`), which is what gives the torch test's byte counts.
"""

from __future__ import annotations

import torch
from torch import nn


class _WithLinear(nn.Module):
    """Base of the torch-test modules that own one Linear(4, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)


class Add(nn.Module):
    """a + b (test_find_single_partition, test_lack_of_devices, test_replace_target_nodes_with)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Mul(nn.Module):
    """a * b: the reference semantics after replacing `operator.add` with `operator.mul`."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


class LinearPlusInput(_WithLinear):
    """linear(a) + a (test_large_node_error): the Linear node carries 96 bytes with its weights."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        linear = self.linear(a)
        return linear + a


class AddRandomTwice(nn.Module):
    """(a + b) + rand(4) + rand(4) (test_partition_node_manipulation): 112 bytes in one partition."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        add_1 = a + b
        add_2 = add_1 + torch.rand(4)
        return add_2 + torch.rand(4)


class LinearWithConstant(_WithLinear):
    """linear(a + b) + c with a stored constant c (test_size_based_partition)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.rand(4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        add_1 = a + b
        linear = self.linear(add_1)
        return linear + self.c


class RandomAddLinear(_WithLinear):
    """(test_partition_device_mapping) two random adds around a Linear."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        add_1 = a + torch.rand(4)
        linear_1 = self.linear(add_1)
        add_2 = torch.rand(4) + a
        return add_2 + linear_1


class DiamondLinear(_WithLinear):
    """(test_partition_latency, test_saturate_host) adds that branch around a Linear and rejoin."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        add_1 = a + torch.rand(4)
        add_2 = add_1 + torch.rand(4)
        linear_1 = self.linear(add_1)
        add_3 = add_2 + linear_1
        return add_2 + add_3


class WideDiamondLinear(_WithLinear):
    """(test_cost_aware_partition) the diamond with one more random branch."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        add_1 = a + torch.rand(4)
        add_2 = add_1 + torch.rand(4)
        linear_1 = self.linear(add_1)
        add_3 = add_2 + torch.rand(4)
        add_4 = add_2 + linear_1
        return add_3 + add_4


class StoredConstants(nn.Module):
    """a + b + c with two stored constants (test_aot_based_partition)."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.rand(4)
        self.c = torch.rand(4)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        add_1 = a + self.b
        return self.c + add_1
