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


class _Mixing(nn.Module):
    """x [batch, context, dim] -> same: x + causal self-mixing over positions with `heads` heads
    (LayerNorm, scores q q^T, masked_fill, softmax, a batched matmul back), no projections."""

    def __init__(self, context: int, dim: int, heads: int) -> None:
        super().__init__()
        self.context, self.dim, self.heads = context, dim, heads
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))
        self.scale = (dim // heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.norm(x).view(-1, self.context, self.heads, self.dim // self.heads).transpose(1, 2)
        scores = torch.matmul(q, q.transpose(-2, -1)) * self.scale
        weights = torch.softmax(scores.masked_fill(~self.mask, float("-inf")), dim=-1)
        return x + torch.matmul(weights, q).transpose(1, 2).reshape(-1, self.context, self.dim)


class UnevenMix(nn.Module):
    """forward(tokens int64 [batch, context]) -> [batch, context, dims[-1]]: an embedding, then
    Linear(dims[i], dims[i+1]) layers in a row, each followed by ReLU or GELU in turn and preceded,
    where `heads[i]` > 0, by causal self-mixing over the positions with that many heads; a final
    LayerNorm. Uneven widths and head counts give a cost model's calibration GEMMs and
    element-wise ops (embedding, layer_norm, softmax, masked_fill, batched matmul, add, mul) of
    many sizes.

    Traced node names: `embed`, `layers_<i>_mix_norm` ..., `layers_<i>_fc`, `layers_<i>_act`, `norm`."""

    def __init__(self, vocab: int = 1024, context: int = 32,
                 dims: list[int] = (256, 1024, 128, 2048, 512, 768, 256, 1536, 256),  # type: ignore[assignment]
                 heads: list[int] = (4, 0, 2, 0, 8, 0, 1, 0)) -> None:  # type: ignore[assignment]
        super().__init__()
        if len(heads) != len(dims) - 1:
            raise ValueError(f"heads needs one entry per Linear layer ({len(dims) - 1}), not {len(heads)}")
        self.embed = nn.Embedding(vocab, dims[0])
        self.layers = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layer = nn.Module()
            if heads[i]:
                layer.mix = _Mixing(context, a, heads[i])
            layer.fc, layer.act = nn.Linear(a, b), (nn.ReLU() if i % 2 == 0 else nn.GELU())
            self.layers.append(layer)
        self.norm = nn.LayerNorm(dims[-1])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            if hasattr(layer, "mix"):
                x = layer.mix(x)
            x = layer.act(layer.fc(x))
        return self.norm(x)
