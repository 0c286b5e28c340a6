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
    (`torch.matmul` calls in the given and the returned graph) and `merged` (calls saved).
    """

    facts_model: ClassVar = MergeMatmulFacts

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return merge_matmul(gm)

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, int]:
        before, after = _matmuls(given), _matmuls(returned)
        return {"matmuls_before": before, "matmuls_after": after, "merged": before - after}


def _matmuls(gm: GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.matmul)
