"""Type `getitem` nodes from their container's annotation with torch's `annotate_getitem_nodes`."""

from __future__ import annotations

from typing import ClassVar

import copy
import operator
from typing import Any

from torch.fx import GraphModule
from torch.fx.passes.annotate_getitem_nodes import annotate_getitem_nodes

from fxflow.nodes import type_name
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class GetitemTypeFacts(StageFacts):
    """`getitem_nodes`, how many carried a type before and after, and each one's type."""

    getitem_nodes: int
    typed_before: int
    typed_after: int
    types: dict[str, str | None]


class AnnotateGetitemNodes(Transform):
    """Tracing leaves `x[i]` untyped even when `x` is annotated (`Tuple[CustomType, Tensor]`,
    `List[T]`, a NamedTuple); this gives each `getitem` node its element's type.

        - /transform@transforms.annotate_getitem: annotate_getitem

    Facts: `getitem_nodes`, `typed_before`/`typed_after` (getitem nodes with a type in the given
    and the returned graph) and `types` (node name -> its type in the returned graph).
    """

    facts_model: ClassVar = GetitemTypeFacts

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        annotated = copy.deepcopy(gm)  # the pass annotates in place; the incoming stage stays as it was
        annotate_getitem_nodes(annotated.graph)
        return annotated

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, Any]:
        items = _getitems(returned)
        return {"getitem_nodes": len(items), "typed_before": sum(1 for n in _getitems(given) if n.type is not None),
                "typed_after": sum(1 for n in items if n.type is not None),
                "types": {n.name: type_name(n.type) for n in items}}


def _getitems(gm: GraphModule) -> list:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is operator.getitem]
