"""Models whose traced graph grows with one size argument, for partitioning at scale.

Each class documents its node count; `family_model(name, nodes)` picks the size that comes
closest to a target number of graph nodes and returns the model with example inputs:

    model, inputs = family_model("residual", 1000)
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from fxflow.models.recommendation import SparseNN


class LinearReLUChain(nn.Module):
    """depth x (Linear(width, width), ReLU): 2 * depth + 2 graph nodes."""

    def __init__(self, depth: int, width: int = 16):
        super().__init__()
        self.layers = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


class ResidualStack(nn.Module):
    """blocks x (x + fc2(relu(fc1(x)))): 4 * blocks + 2 graph nodes."""

    def __init__(self, blocks: int, width: int = 16):
        super().__init__()
        self.blocks = nn.Sequential(*[_Residual(width) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ParallelChains(nn.Module):
    """`branches` Linear+ReLU chains of `depth` layers on the same input, summed:
    branches * (2 * depth + 1) + 1 graph nodes."""

    def __init__(self, branches: int, depth: int, width: int = 16):
        super().__init__()
        self.branches = nn.ModuleList(LinearReLUChain(depth, width) for _ in range(branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class _Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        scores = torch.matmul(self.q(h), self.k(h).transpose(-1, -2)) * self.scale
        x = x + self.out(torch.matmul(torch.softmax(scores, dim=-1), self.v(h)))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class TransformerStack(nn.Module):
    """blocks x (single-head attention + MLP, pre-norm, residuals): 16 * blocks + 2 graph nodes."""

    def __init__(self, blocks: int, dim: int = 8):
        super().__init__()
        self.blocks = nn.Sequential(*[_Block(dim) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _sparse_nn(tables: int) -> SparseNN:
    """torch's test_sparse_nn_partition model with `tables` tables of 2,000 to 8,000 rows of width 2: the
    tables hold most of the bytes at every size, as torch's test's do."""
    return SparseNN(table_rows=tuple(2000 * (1 + i % 4) for i in range(tables)), dim=2)


# name -> (nodes for size s, model for size s, example inputs for the model)
FAMILIES: dict[str, tuple[Callable[[int], int], Callable[[int], nn.Module], Callable[[nn.Module], list]]] = {
    "chain": (lambda s: 2 * s + 2, lambda s: LinearReLUChain(s), lambda m: [torch.rand(2, 16)]),
    "residual": (lambda s: 4 * s + 2, lambda s: ResidualStack(s), lambda m: [torch.rand(2, 16)]),
    "parallel": (lambda s: 4 * (2 * s + 1) + 1, lambda s: ParallelChains(4, s), lambda m: [torch.rand(2, 16)]),
    "transformer": (lambda s: 16 * s + 2, lambda s: TransformerStack(s), lambda m: [torch.rand(2, 4, 8)]),
    "sparse_nn": (lambda s: 19 + 3 * s + s // 2, lambda s: _sparse_nn(s), lambda m: [
        torch.rand(2, 2), torch.randint(10, (8,)), torch.tensor([0, 4])]),
}


def family_model(name: str, nodes: int, seed: int = 0) -> tuple[nn.Module, list]:
    """The family's model whose graph has about `nodes` nodes (at least the smallest size), and inputs."""
    count, build, inputs = FAMILIES[name]
    size = max(1, min(range(1, nodes + 1), key=lambda s: abs(count(s) - nodes)))
    torch.manual_seed(seed)
    model = build(size)
    return model, inputs(model)
