"""Parallel MLP towers whose outputs are summed: a model whose partitions can run side by side, so
the device count and the partitioning mode change both the partition count and the critical path."""

from __future__ import annotations

import torch
from torch import nn


class Towers(nn.Module):
    """`towers` stacks of `depth` Linear(width, width) layers on the same input; out = x + sum of towers."""

    def __init__(self, width: int = 8, depth: int = 3, towers: int = 3) -> None:
        super().__init__()
        self.towers = nn.ModuleList(
            nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)]) for _ in range(towers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for tower in self.towers:
            out = out + tower(x)
        return out
