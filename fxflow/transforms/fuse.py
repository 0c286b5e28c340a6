"""Fold BatchNorm into the preceding convolution or Linear with torch's `optimization.fuse`."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.fx import GraphModule
from torch.fx.experimental import optimization

from fxflow.layers import layer_counts
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform

COUNTED = ("batchnorm", "conv", "linear")  # what fuse folds, and what it folds into


class FuseFacts(StageFacts):
    """Layer counts before and after, and how many BatchNorms were folded."""

    before: dict[str, int]
    after: dict[str, int]
    fused: int


class FuseConvBn(Transform):
    """Conv/BatchNorm and Linear/BatchNorm pairs become one layer whose weights absorb the
    normalisation (inference only: torch refuses a module in train mode).

        - /transform@transforms.fuse: fuse

    A BatchNorm is left in place when it keeps no running statistics (it normalises with batch
    statistics even in eval mode) or when the convolution's output has other users.
    `no_trace` is torch's parameter: use the incoming GraphModule as it is instead of
    re-tracing it with the default tracer (keeps a custom tracer's leaves).

    Facts: `before` and `after` (layer counts of the given and the returned module, by kind:
    batchnorm, conv, linear), `fused` (BatchNorm layers folded away).
    """

    facts_model: ClassVar = FuseFacts

    no_trace: bool = False

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return optimization.fuse(gm, inplace=False, no_trace=self.no_trace)

    def returned_facts(self, given: GraphModule, returned: torch.nn.Module) -> dict[str, Any]:
        before, after = layer_counts(given, COUNTED), layer_counts(returned, COUNTED)
        return {"before": before, "after": after, "fused": before["batchnorm"] - after["batchnorm"]}

