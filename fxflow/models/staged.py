"""Models whose partition DAG has a known shape, for running partitions on separate workers.

`MLPChain` splits into a chain of stages (a pipeline); `WidthChain` too, with layers of very
different cost, so an equal number of layers per stage is far from an equal time per stage;
`ParallelBranches` splits into a stem, independent branches that can run at the same time on
different devices, and a head.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPChain(nn.Module):
    """forward(x [batch, width]) -> [batch, width]: `depth` blocks of Linear + ReLU in a row.

    Every block carries the same weights, so a size-based partitioner over equal devices cuts
    it into equal stages.
    """

    def __init__(self, width: int = 256, depth: int = 8):
        super().__init__()
        self.blocks = nn.Sequential(*(m for _ in range(depth) for m in (nn.Linear(width, width), nn.ReLU())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class WidthChain(nn.Module):
    """forward(x [batch, widths[0]]) -> [batch, widths[-1]]: Linear(widths[i], widths[i+1]) + ReLU
    in a row (`layers.<2i>` is the i-th Linear). Uneven widths make uneven layers."""

    def __init__(self, widths: list[int] | tuple[int, ...] = (1024, 1024, 1024, 1024, 1024, 128, 128, 128, 128)):
        super().__init__()
        pairs = zip(widths[:-1], widths[1:])
        self.layers = nn.Sequential(*(m for a, b in pairs for m in (nn.Linear(a, b), nn.ReLU())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ParallelBranches(nn.Module):
    """forward(x [batch, width]) -> [batch, width]: a stem, `branches` independent
    Linear-ReLU-Linear branches over the stem's output, and a head over their concatenation.

    Traced node names: `stem`, `relu`, `branch_<i>_0`..`branch_<i>_2`, `cat`, `head`.
    """

    def __init__(self, width: int = 128, branches: int = 3):
        super().__init__()
        self.stem = nn.Linear(width, width)
        self.branch = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)) for _ in range(branches)
        )
        self.head = nn.Linear(width * branches, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.head(torch.cat([b(h) for b in self.branch], dim=1))
