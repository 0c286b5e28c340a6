"""Models whose layers differ in size, so that where a plan cuts them changes its step time
measurably: for calibrating a cost model on one and checking its predictions on another."""

from __future__ import annotations

import torch
from torch import nn


class UnevenChain(nn.Module):
    """forward(x [batch, dims[0]]) -> [batch, dims[-1]]: Linear(dims[i], dims[i+1]) layers in a row,
    each followed by ReLU or GELU in turn, with a LayerNorm in the middle."""

    def __init__(self, dims: list[int] = (256, 1024, 128, 2048, 512, 768, 256, 1536, 256)) -> None:  # type: ignore[assignment]
        super().__init__()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers += [nn.Linear(a, b), nn.ReLU() if i % 2 == 0 else nn.GELU()]
            if i == len(dims) // 2 - 1:
                layers.append(nn.LayerNorm(b))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UnevenTowers(nn.Module):
    """forward(x [batch, dim]) -> [batch, dim]: towers Linear(dim, w) -> ReLU -> Linear(w, dim) of
    hidden widths `widths`, side by side on the same input; out = x + sum of towers. Towers of
    widths 1, 2, 4, ... units make every split of them over two devices load them differently.

    Traced node names: `towers_<i>_0` (first Linear), `towers_<i>_1` (ReLU), `towers_<i>_2`, `add_*`."""

    def __init__(self, dim: int = 256, widths: list[int] = (64, 128, 256, 512, 1024, 2048)) -> None:  # type: ignore[assignment]
        super().__init__()
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(dim, w), nn.ReLU(), nn.Linear(w, dim)) for w in widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for tower in self.towers:
            out = out + tower(x)
        return out
