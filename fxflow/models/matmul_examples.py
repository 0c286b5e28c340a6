"""Matrix-multiply patterns for `torch.fx.experimental.merge_matmul` (imported by torch's test_fx_experimental.py).

merge_matmul concatenates the left operands of independent `torch.matmul` calls that share one
right-hand side and splits the single product again. Only the first pattern here qualifies;
the others must come out with their matmuls untouched.
"""

from __future__ import annotations

import torch
from torch import nn


class SharedRhsMatmuls(nn.Module):
    """x @ rhs and y @ rhs, independent: merged into one matmul over cat([x, y])."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.matmul(x, rhs), torch.matmul(y, rhs)


class SharedWeightMatmuls(nn.Module):
    """x @ W and y @ W with W a parameter (a `get_attr` operand): merged like a shared input."""

    def __init__(self, k: int = 4, n: int = 5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(k, n))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) + torch.matmul(y, self.weight).sum()


class DistinctRhsMatmuls(nn.Module):
    """x @ r1 and y @ r2: no shared right-hand side, nothing to merge."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.matmul(x, r1), torch.matmul(y, r2)


class ChainedMatmuls(nn.Module):
    """(x @ rhs) @ rhs: the same right-hand side, but the second product depends on the first,
    so they cannot be computed as one."""

    def forward(self, x: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(x, rhs), rhs)
