"""Modules from torch's fusion and inference-optimization tests; each docstring names its test.

The torch tests define them inside the test functions; here they are importable so recipes can name
them (`_target_: fxflow.models.optimization_examples.ConvBnReluBranches`).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBnReluBranches(nn.Module):
    """Two branches of `depth` x (Conv2d(3, 3, 1), BatchNorm2d, ReLU), summed
    (test_optimize_for_inference_cpu: depth 10).

    `dropout` > 0 appends a Dropout after every ReLU, so `remove_dropout` has something to remove;
    the torch test's model has none.
    """

    def __init__(self, depth: int = 10, channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.model = self._branch(depth, channels, dropout)
        self.model2 = self._branch(depth, channels, dropout)

    @staticmethod
    def _branch(depth: int, channels: int, dropout: float) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.model2(x)


class ConvBnNoRunningStats(nn.Module):
    """Conv2d(32, 64, 3, stride=2) then a BatchNorm2d that keeps no running statistics
    (test_conv_bn_fusion_not_running_state): it normalises with batch statistics even in eval
    mode, so it cannot be folded into the convolution and fusion must leave it alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(32, 64, 3, stride=2)
        self.bn = nn.BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ConvBnMixedDtype(nn.Module):
    """A bfloat16 Conv2d(3, 16, 3, padding=1, bias=False) followed by a float32 BatchNorm2d(16,
    eps=1e-3) (test_conv_bn_fusion_mixed_dtype): the fused convolution must stay bfloat16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False, dtype=torch.bfloat16)
        self.bn = nn.BatchNorm2d(16, eps=0.001, momentum=0.1, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))
