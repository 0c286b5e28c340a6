"""Lift each leaf module's lowering attributes onto its call_module node, and record them."""

from __future__ import annotations

from typing import Any, ClassVar

from torch.fx import GraphModule
from torch.fx.passes.param_fetch import lift_lowering_attrs_to_nodes

from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class LoweringAttrsFacts(StageFacts):
    """How many nodes got lowering attributes, and per node its class and keys."""

    lifted: int
    nodes: dict[str, dict[str, Any]]


class LoweringAttrs(Transform):
    """torch's `param_fetch.lift_lowering_attrs_to_nodes` (test_fetch): every call_module node
    gets `attrs_for_lowering`, the module's class name (`name`) and the attributes a lowering
    backend needs (Conv2d: weight, bias, kernel_size, stride, padding, dilation, groups,
    padding_mode). A probe: the module computes what it did before.

    Usage in a recipe::

        defaults:
          - /transform@transforms.lower: lowering_attrs

    Facts: `nodes.<node>.{class, keys, key_count}` (nodes inside split submodules are named
    `<submodule>.<node>`), `lifted` (how many nodes). torch refuses a module class its book
    does not list (e.g. LayerNorm); the stage then fails with torch's message.
    """

    facts_model: ClassVar = LoweringAttrsFacts

    probe: ClassVar[bool] = True

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        lift_lowering_attrs_to_nodes(gm)
        return gm

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, Any]:
        """The attributes found on the nodes of the returned module (and its GraphModule children)."""
        nodes = {}
        for path, module in returned.named_modules():
            if not isinstance(module, GraphModule):
                continue
            for node in module.graph.nodes:
                attrs = getattr(node, "attrs_for_lowering", None)
                if attrs is not None:
                    nodes[f"{path}.{node.name}" if path else node.name] = {
                        "class": attrs["name"], "keys": sorted(attrs), "key_count": len(attrs)}
        return {"lifted": len(nodes), "nodes": nodes}
