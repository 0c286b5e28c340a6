"""Merge independent matmuls that share a right-hand side with torch's `merge_matmul`."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.fx import GraphModule
from torch.fx.experimental.merge_matmul import merge_matmul

from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class MergeMatmulFacts(StageFacts):
    """torch.matmul calls before and after, and how many were merged."""

    matmuls_before: int
    matmuls_after: int
    merged: int


class MergeMatmul(Transform):
    """`torch.matmul(a, C)` and `torch.matmul(b, C)` with no data dependency between them become
    one `torch.matmul(torch.cat([a, b]), C)` whose result is split again. Matmuls with different
    right-hand sides, or where one feeds the other, are left as they are.

        - /transform@transforms.merge: merge_matmul

    torch re-traces the module with the default tracer. Facts: `matmuls_before`/`matmuls_after`
    (`torch.matmul` calls in the graph) and `merged` (calls saved).
    """

    facts_model: ClassVar = MergeMatmulFacts

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        before = _matmuls(gm)
        merged = merge_matmul(gm)
        after = _matmuls(merged)
        ctx.facts.update({"matmuls_before": before, "matmuls_after": after, "merged": before - after})
        return merged


def _matmuls(gm: GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.matmul)
