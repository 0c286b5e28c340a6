"""What a split module holds, read from the module itself: the `submod_*` children its graph
calls, in call order, and the nodes of each.

Both ways of splitting a graph (`SplitModule` with a policy, `PartitionOverDevices` over a device
list) hand on a module whose graph calls one child per partition. Their facts are read from
that returned module with these functions, so they describe what the stage hands on:

    subs = called_submodules(split)              # {'submod_0': <GraphModule>, ...} in call order
    compute_nodes(subs["submod_0"])              # the nodes that compute: [linear, relu]

Node names inside a submodule may differ from the split graph's; `tag_original_names(gm)` before
splitting lets `original_name(node)` give the name each node had there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import GraphModule, Node

from fxflow.nodes import NON_COMPUTE_OPS, compute_nodes

# Node meta key holding a node's name in the graph that was split: split_module copies node meta
# into the submodules but may rename the nodes there (`add_1` becomes `add` in a graph of its own).
ORIGINAL_NAME = "fxflow.original_name"


def tag_original_names(gm: GraphModule) -> None:
    """Write each compute node's name into its meta before splitting, so the nodes of the
    submodules can be traced back to the graph that was split (`original_name`)."""
    for node in gm.graph.nodes:
        if node.op not in NON_COMPUTE_OPS:
            node.meta[ORIGINAL_NAME] = node.name


def original_name(node: Node) -> str:
    """A submodule node's name in the graph that was split (its own name where it was not tagged)."""
    return node.meta.get(ORIGINAL_NAME, node.name)


def called_submodules(module: Any, prefix: str = "submod_") -> dict[str, torch.nn.Module]:
    """The children named `prefix...` that `module`'s graph calls, in call order; {} for a module
    that is no GraphModule or calls none (e.g. a stage that handed on the graph it received)."""
    if not isinstance(module, GraphModule):
        return {}
    children = dict(module.named_children())
    called: dict[str, torch.nn.Module] = {}
    for node in module.graph.nodes:
        if node.op == "call_module" and str(node.target).startswith(prefix) and node.target in children:
            called.setdefault(node.target, children[node.target])
    return called


def graph_node_names(subs: dict[str, torch.nn.Module]) -> dict[str, list[str]]:
    """Every node name of each submodule that is a GraphModule, in graph order."""
    return {name: [n.name for n in sub.graph.nodes] for name, sub in subs.items() if isinstance(sub, GraphModule)}


def has_attribute(module: torch.nn.Module, path: str) -> bool:
    """Whether `module` holds something (submodule, parameter, buffer, tensor) at dotted `path`."""
    obj: Any = module
    for part in path.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True
