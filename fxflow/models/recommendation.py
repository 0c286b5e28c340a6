"""The recommendation model of torch's `test_sparse_nn_partition`: a bottom MLP over dense
features, five sum-pooled EmbeddingBag tables (500k, 1M, 1M, 1M, 500k rows of width 4), and
a top MLP over their concatenation. The tables hold ~64 MB of weights, so they dominate any
partitioning over memory-limited devices.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(num_layers: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


class SparseNN(nn.Module):
    """forward(a [batch, 4] floats, b [8] ids, offset [batch] bag offsets) -> [batch, 24]."""

    def __init__(self, table_rows: tuple[int, ...] = (500_000, 1_000_000, 1_000_000, 1_000_000, 500_000), dim: int = 4):
        super().__init__()
        self.bottom_layers = mlp(4, dim)
        self.top_layers = mlp(3, dim * (len(table_rows) + 1))
        self.embedding_layers = nn.ModuleList(nn.EmbeddingBag(rows, dim, mode="sum", sparse=True) for rows in table_rows)

    def forward(self, a: torch.Tensor, b: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        x = self.bottom_layers(a)
        # Ids drawn inside forward, as the torch test does; tracing freezes them into the graph.
        c = [torch.randint(10, (8,)) + b for _ in self.embedding_layers]
        y = []
        for i, table in enumerate(self.embedding_layers):
            ids = c[i] if i % 2 == 0 else torch.randint(10, (8,))
            y.append(table(ids, offset))
        return self.top_layers(torch.cat([x] + y, dim=1))
