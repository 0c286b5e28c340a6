"""Write a key into the `meta` of chosen nodes, so a later step can show whether meta survives."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

from torch.fx import GraphModule

from fxflow.nodes import qualified_target
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform

FxOp = Literal["placeholder", "call_function", "call_method", "call_module", "get_attr", "output"]


class TagFacts(StageFacts):
    """How many nodes were tagged."""

    tagged: int


class TagNodes(Transform):
    """Set `node.meta[key] = value` on every node whose qualified target is `target`
    (`call_function:torch.add`, `call_module:torch.nn.Conv2d`, `call_method:relu`; for
    placeholders, get_attr and output nodes the op alone, e.g. `placeholder`).

        transforms:
          tag:
            _target_: fxflow.transforms.tag_nodes.TagNodes
            target: call_function:torch.add
            key: my_key
            value: 7

    Pair it with the `node_meta` probe after the step under study. The computation is unchanged.
    Facts: `tagged` (how many nodes got the key).
    """

    facts_model: ClassVar = TagFacts

    target: str
    key: str
    value: Any

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        tagged = copy.deepcopy(gm)  # meta is written in place; the incoming stage stays as it was
        modules = dict(tagged.named_modules())
        count = 0
        for node in tagged.graph.nodes:
            if qualified_target(node, modules) == self.target:
                node.meta[self.key] = copy.deepcopy(self.value)
                count += 1
        ctx.facts["tagged"] = count
        return tagged
