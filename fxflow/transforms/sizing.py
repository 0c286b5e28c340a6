"""Size every node (output bytes and total bytes with weights) by running the example inputs through it."""

from __future__ import annotations

from typing import ClassVar

from torch.fx import GraphModule
from torch.fx.passes import graph_manipulation

from fxflow.nodes import node_sizes
from fxflow.transforms.base import StageContext, Transform


class SizeNodes(Transform):
    """torch's `graph_manipulation.get_size_of_all_nodes` on the example inputs.

    Usage in a recipe::

        defaults:
          - /transform@transforms.size_nodes: size_nodes

    Facts: `nodes.<name>.output_bytes`, `nodes.<name>.total_bytes`, `total_bytes`.
    """

    provides: ClassVar[tuple[str, ...]] = ("node_sizes",)

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        graph_manipulation.get_size_of_all_nodes(gm, list(ctx.inputs.args))
        sizes = node_sizes(gm)
        ctx.facts["nodes"] = sizes
        ctx.facts["total_bytes"] = sum(s["total_bytes"] for s in sizes.values())
        return gm
