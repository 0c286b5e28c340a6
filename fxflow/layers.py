"""Layer counts by kind, for transforms that fold, drop or swap layers (fusion, inference
optimization) and must show that they did: `layer_counts(gm)` before and after."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

# Kind -> the classes counted as that kind. MKLDNN layers are torch.utils.mkldnn's wrappers.
KINDS: dict[str, tuple[type, ...]] = {
    "batchnorm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "linear": (nn.Linear,),
    "dropout": (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout),
}


def layer_counts(module: torch.nn.Module, kinds: tuple[str, ...] = tuple(KINDS)) -> dict[str, int]:
    """How many layers of each kind `module` holds (all submodules, each counted once); the kind
    `mkldnn` counts torch.utils.mkldnn's layers (MkldnnConv2d, MkldnnLinear, MkldnnBatchNorm ...)."""
    counts: Counter[str] = Counter()
    for sub in module.modules():
        for kind in kinds:
            if kind == "mkldnn":
                counts[kind] += type(sub).__module__ == "torch.utils.mkldnn"
            elif type(sub) in KINDS[kind]:
                counts[kind] += 1
    return {kind: counts[kind] for kind in kinds}
