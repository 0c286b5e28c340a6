"""Annotate node types from operator schemas and signatures with torch's `AnnotateTypesWithSchema`."""

from __future__ import annotations

from typing import ClassVar

from types import BuiltinFunctionType
from typing import Any

from torch.fx import GraphModule
from torch.fx.experimental.schema_type_annotation import AnnotateTypesWithSchema as TorchAnnotate

from fxflow.nodes import node_key
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class SchemaTypeFacts(StageFacts):
    """Typed nodes before and after, and the targets left untyped (all, and the Python ones)."""

    typed_before: int
    typed_after: int
    untyped: list[str]
    untyped_python: list[str]


class AnnotateTypesWithSchema(Transform):
    """Give each node the return type its target declares: torch.nn modules by their forward's
    annotation, Python functions by their signature, parameters and buffers as Tensor. The typed
    graph's generated code then carries annotations (what `torch.jit.script` needs).

        - /transform@transforms.annotate: annotate_types

    C++ builtin functions (`torch.flatten`, `operator.add`) have no Python signature to read, and
    functions whose return type depends on a flag (`max_pool2d`'s `return_indices`) stay untyped.

    Facts: `typed_before`/`typed_after` (nodes with a type in the given and the returned graph),
    `untyped` (the untyped nodes it returns, as `op:target`, e.g. `call_module:maxpool`,
    `call_function:operator.add`) and `untyped_python` (the same without C++ builtin targets).
    """

    facts_model: ClassVar = SchemaTypeFacts

    annotate_functionals: bool = True
    annotate_modules: bool = True
    annotate_get_attrs: bool = True

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return TorchAnnotate(gm, self.annotate_functionals, self.annotate_modules, self.annotate_get_attrs).transform()

    def returned_facts(self, given: GraphModule, returned: GraphModule) -> dict[str, Any]:
        untyped = [n for n in returned.graph.nodes if n.type is None]
        return {
            "typed_before": sum(1 for n in given.graph.nodes if n.type is not None),
            "typed_after": sum(1 for n in returned.graph.nodes if n.type is not None),
            "untyped": sorted({node_key(n) for n in untyped}),
            "untyped_python": sorted({node_key(n) for n in untyped if not isinstance(n.target, BuiltinFunctionType)}),
        }
