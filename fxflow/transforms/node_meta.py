"""Read one `meta` key from every node that has it (a probe: the module is not changed)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch.fx import GraphModule

from fxflow.nodes import qualified_target
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class NodeMetaFacts(StageFacts):
    """The `meta` values found, by node target, and how many nodes had one."""

    values: dict[str, list[Any]]
    nodes: int


class NodeMeta(Transform):
    """Report `node.meta[key]` by qualified target, e.g. after `tag_nodes` and a rewrite, whether
    the rewrite carried the key over to its new nodes.

        - /transform@transforms.meta: node_meta
        transforms.meta.key=my_key

    Facts: `values` (qualified target -> the values found, in graph order) and `nodes` (how many
    nodes hold the key).
    """

    facts_model: ClassVar = NodeMetaFacts

    probe: ClassVar[bool] = True

    key: str

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        modules = dict(gm.named_modules())
        values: dict[str, list[Any]] = {}
        for node in gm.graph.nodes:
            if self.key in node.meta:
                values.setdefault(qualified_target(node, modules), []).append(_plain(node.meta[self.key]))
        ctx.facts.update({"values": values, "nodes": sum(map(len, values.values()))})
        return gm


def _plain(value: Any) -> Any:
    """The value itself when JSON holds it, else its repr (meta may hold tensors or shapes)."""
    return value if isinstance(value, (bool, int, float, str, type(None), list, dict)) else repr(value)
