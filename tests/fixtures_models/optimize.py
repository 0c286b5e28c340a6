"""Held-out models and a do-nothing step for the fusion, optimization and normalization tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.fx import GraphModule

from fxflow.transforms.base import StageContext, Transform


class Passthrough(Transform):
    """A step that returns its input unchanged and records nothing: what a transform that
    silently does nothing looks like to a recipe."""

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return gm


class LinearBatchNorm(nn.Module):
    """Linear then BatchNorm1d with running statistics moved off 0/1: fuse folds it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x))


class ConvOutputUsedTwice(nn.Module):
    """The convolution's output feeds the BatchNorm and the result: folding would change the
    other use, so fuse must leave the pair alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class AddWithAlpha(nn.Module):
    """torch.add with a keyword `alpha`, and a plain torch.mul."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.add(x, y, alpha=2) + torch.mul(x, y)
