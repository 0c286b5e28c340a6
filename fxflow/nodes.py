"""Words for torch.fx nodes that several parts of fxflow share: which ops compute, and stable
names for what a node calls."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Literal

import torch
from pydantic_core import PydanticCustomError
from torch.fx import Node
from torch.fx.node import _get_qualified_name

from fxflow.config.targets import TargetPolicy, TargetRefused

# The ops that call something: what a config may name as a node's op.
FxOp = Literal["call_function", "call_method", "call_module"]

# Nodes that hold inputs, constants or the result rather than computing something.
NON_COMPUTE_OPS = frozenset({"placeholder", "get_attr", "output"})


def compute_nodes(module: torch.nn.Module) -> list[Node]:
    """The nodes of a GraphModule's graph that compute, in graph order; none for any other module
    (a split's leaf submodule is a plain module)."""
    if not isinstance(module, torch.fx.GraphModule):
        return []
    return [n for n in module.graph.nodes if n.op not in NON_COMPUTE_OPS]


def op_name(node: Node, modules: dict[str, torch.nn.Module]) -> str:
    """A short name for what a node computes: function or method name, or the module's class name."""
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def node_sizes(gm: torch.fx.GraphModule) -> dict[str, dict[str, int]]:
    """Node name -> {output_bytes, total_bytes} for every node sized by `get_size_of_all_nodes`."""
    sizes = {}
    for node in gm.graph.nodes:
        size = getattr(node, "size_bytes", None)
        if size is not None:
            sizes[node.name] = {"output_bytes": int(size.output_size), "total_bytes": int(size.total_size)}
    return sizes


def function_at(path: str, field: str = "", called: bool = True) -> Callable[..., Any]:
    """The function a config names as a `call_function` target (`operator.add`, `torch.relu`),
    resolved by the target policy from operator, math and torch; one a graph will call (`called`)
    must be a tensor function on the policy's allow list, one only matched against nodes may be any
    function found there. A validation error that says how to write one otherwise."""
    policy = TargetPolicy()
    try:
        return policy.graph_function(path) if called else policy.matched_function(path)
    except TargetRefused as exc:
        raise PydanticCustomError(
            "target", "function '{path}' {why}; write a dotted path such as operator.add or torch.relu",
            {"path": path, "why": exc.message, **({"field": field} if field else {})},
        ) from None


def qualified_target(node: Node, modules: dict[str, torch.nn.Module]) -> str:
    """`op:qualified name` of what a node calls; qualified because `torch.add` and `operator.add`
    share a `__name__`. Modules are named by class (`call_module:torch.nn.BatchNorm2d`)."""
    if node.op == "call_function":
        name = _get_qualified_name(node.target) if callable(node.target) else str(node.target)
        return f"call_function:{name.replace('_operator.', 'operator.', 1) if name.startswith('_operator.') else name}"
    if node.op == "call_module":
        module = modules[node.target]
        # every GraphModule instance has a class of its own (GraphModule.__new__.<locals>.GraphModuleImpl)
        cls = torch.fx.GraphModule if isinstance(module, torch.fx.GraphModule) else type(module)
        public = getattr(torch.nn, cls.__name__, None) is cls
        return f"call_module:{'torch.nn.' + cls.__name__ if public else cls.__module__ + '.' + cls.__qualname__}"
    if node.op == "call_method":
        return f"call_method:{node.target}"
    return node.op


def node_key(node: Node) -> str:
    """`op:target` as torch's tests write a node: functions by qualified name
    (`call_function:operator.add`), modules and methods by their target (`call_module:maxpool`)."""
    if node.op == "call_function":
        return qualified_target(node, {})
    return f"{node.op}:{node.target}"


def type_name(annotation: object) -> str | None:
    """A node's type annotation in words (`torch.Tensor`, `typing.List[torch.Tensor]`); None when untyped."""
    if annotation is None:
        return None
    if isinstance(annotation, type):
        return annotation.__qualname__ if annotation.__module__ == "builtins" else f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)


def graph_facts(module: object) -> dict[str, object]:
    """What a stage's graph holds, for expectations: node count, ops, qualified targets with
    counts, placeholders and whether `Graph.lint` accepts it. Non-graph stages (a scripted or
    re-imported module) record only their class."""
    if not isinstance(module, torch.fx.GraphModule):
        return {"module": f"{type(module).__module__}.{type(module).__qualname__}"}
    facts: dict[str, object] = {"module": "GraphModule"}
    modules = dict(module.named_modules())
    nodes = list(module.graph.nodes)
    targets = [qualified_target(n, modules) for n in nodes if n.op.startswith("call_")]
    facts.update({
        "node_count": len(nodes),
        "ops": dict(sorted(Counter(n.op for n in nodes).items())),
        "targets": sorted(set(targets)),
        "target_counts": dict(sorted(Counter(targets).items())),
        "placeholders": [n.name for n in nodes if n.op == "placeholder"],
        "lint": _lint(module.graph),
    })
    return facts


def _lint(graph: torch.fx.Graph) -> str:
    try:
        graph.lint()
    except Exception as exc:  # noqa: BLE001 - the message is the fact
        return f"{type(exc).__name__}: {exc}"
    return "ok"
