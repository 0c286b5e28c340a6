"""Models of the torch tests on exporting a graph and lifting lowering attributes."""

from __future__ import annotations

import torch
from torch import nn


class ToFolderModule(nn.Module):
    """A parameter, a plain tensor attribute, float and int32 buffers, a BatchNorm1d inside a
    Sequential and a Linear (test_to_folder): every kind of state `GraphModule.to_folder` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(2))
        self.seq = nn.Sequential(nn.BatchNorm1d(2, 2))
        self.linear = nn.Linear(2, 2)
        self.attr = torch.randn(2)
        self.register_buffer("attr2", torch.randn(2))
        self.register_buffer("attr3", torch.ones(2, dtype=torch.int32))

    def forward(self, x):
        return self.linear(self.seq(self.W + self.attr + self.attr2 + self.attr3 + x))


class ConvAddBatchNorm(nn.Module):
    """Conv2d(3, 3, 2), a += a, BatchNorm2d(3) (test_fetch)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 2)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, a):
        a = self.conv(a)
        a += a
        return self.bn(a)
