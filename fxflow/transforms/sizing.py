"""Size every node (output bytes and total bytes with weights) by running the example inputs through it."""

from __future__ import annotations

from typing import ClassVar

from torch.fx import GraphModule
from torch.fx.passes import graph_manipulation

from fxflow.transforms.base import StageContext, Transform


def node_sizes(gm: GraphModule) -> dict[str, dict[str, int]]:
    """Node name -> {output_bytes, total_bytes} for every sized node."""
    sizes = {}
    for node in gm.graph.nodes:
        size = getattr(node, "size_bytes", None)
        if size is not None:
            sizes[node.name] = {"output_bytes": int(size.output_size), "total_bytes": int(size.total_size)}
    return sizes


class SizeNodes(Transform):
    """torch's `graph_manipulation.get_size_of_all_nodes` on the example inputs.

    Usage in a recipe::

        transforms:
          size_nodes: {_target_: fxflow.transforms.SizeNodes}

    Facts: `nodes.<name>.output_bytes`, `nodes.<name>.total_bytes`, `total_bytes`.
    """

    provides: ClassVar[tuple[str, ...]] = ("node_sizes",)

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        graph_manipulation.get_size_of_all_nodes(gm, list(ctx.inputs))
        sizes = node_sizes(gm)
        ctx.facts["nodes"] = sizes
        ctx.facts["total_bytes"] = sum(s["total_bytes"] for s in sizes.values())
        return gm
