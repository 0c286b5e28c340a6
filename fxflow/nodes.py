"""Words for torch.fx nodes that several parts of fxflow share: which ops compute, and stable
names for what a node calls."""

from __future__ import annotations

import torch
from torch.fx import Node

# Nodes that hold inputs, constants or the result rather than computing something.
NON_COMPUTE_OPS = frozenset({"placeholder", "get_attr", "output"})


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
