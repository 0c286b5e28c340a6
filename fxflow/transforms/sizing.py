"""Size every node (output bytes and total bytes with weights) by running the example inputs through it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from torch.fx import GraphModule
from torch.fx.passes import graph_manipulation

from fxflow.nodes import node_sizes
from fxflow.partitioning.sizing import size_nodes
from fxflow.stages import GraphProperty, StageFacts
from fxflow.transforms.base import StageContext, Transform


class SizeFacts(StageFacts):
    """Bytes in all, how many nodes were sized, the largest, and (for small graphs) every node's sizes."""

    total_bytes: int
    sized_nodes: int
    largest: dict[str, Any] | None = None
    nodes: dict[str, dict[str, Any]] | None = None


class SizeNodes(Transform):
    """Set `node.size_bytes` on every node, as torch's `graph_manipulation.get_size_of_all_nodes` does.

    `method: fxflow` (default) sizes in one pass (torch's rebuilds the module table per node, which
    is quadratic: seconds at a few thousand nodes); `method: torch` calls torch's own. Both give
    the same sizes (tests/test_partitioning_sizing.py).

    Usage in a recipe::

        defaults:
          - /transform@transforms.size_nodes: size_nodes

    Facts: `total_bytes`, `sized_nodes`, `largest.{name,total_bytes}`, and for graphs of at most
    `record_nodes` nodes `nodes.<name>.{output_bytes,total_bytes}` (the stage's node table in the
    record lists every node's sizes whatever the graph's size).
    """

    facts_model: ClassVar = SizeFacts

    provides: ClassVar = (GraphProperty.NODE_SIZES,)
    reads_graph: ClassVar = True

    method: Literal["fxflow", "torch"] = "fxflow"
    record_nodes: int = Field(1000, ge=0)

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        if self.method == "torch":
            graph_manipulation.get_size_of_all_nodes(gm, list(ctx.inputs.args))
        else:
            size_nodes(gm, list(ctx.inputs.args))
        sizes = node_sizes(gm)
        ctx.facts["total_bytes"] = sum(s["total_bytes"] for s in sizes.values())
        ctx.facts["sized_nodes"] = len(sizes)
        if sizes:
            name = max(sizes, key=lambda n: sizes[n]["total_bytes"])
            ctx.facts["largest"] = {"name": name, "total_bytes": sizes[name]["total_bytes"]}
        if len(sizes) <= self.record_nodes:
            ctx.facts["nodes"] = sizes
        return gm
