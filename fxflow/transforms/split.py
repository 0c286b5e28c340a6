"""Split a graph into submodules with torch's `split_module`, partitions chosen by a configured policy."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import networkx as nx
from pydantic import field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.passes.split_module import split_module

from fxflow.stages import GraphProperty, StageFacts
from fxflow.transforms.base import StageContext, Transform
from fxflow.transforms.split_policies import SplitPolicy


class SplitFacts(StageFacts):
    """The policy's assignment, the submodules called, their nodes, the qualname map, and whether
    node meta survived (with `mark_meta`)."""

    policy: str
    assignment: dict[str, int]
    submodules: list[str]
    node_counts: dict[str, int]
    nodes: dict[str, list[str]]
    qualname_map: dict[str, str]
    qualname_map_keys: list[str]
    all_graph_modules: bool
    meta_kept: bool | None = None


class SplitModule(Transform):
    """`torch.fx.passes.split_module.split_module` driven from config; every option exposed.

    Usage in a recipe::

        defaults:
          - /transform@transforms.split: split_module
          - /split_policy@transforms.split.policy: cut_at
        transforms:
          split:
            policy: {op: call_module, target: lin}
            keep_original_order: true

    The result calls one `submod_<id>` GraphModule per partition (`submod_<affix>_<id>` with
    `partition_affix`). `mark_meta` sets `node.meta[key] = value` on every node but the output
    before splitting, to show that node meta reaches the submodules.

    Facts: `assignment` (compute node -> partition), `submodules` (names in call order),
    `node_counts` and `nodes` per submodule, `qualname_map` (new -> original qualified name of
    every attribute moved into a submodule) with its sorted `qualname_map_keys`,
    `all_graph_modules`, and with `mark_meta` `meta_kept` (every non-output node of every
    submodule still carries the marks).
    """

    facts_model: ClassVar = SplitFacts

    invalidates: ClassVar = (GraphProperty.NODE_SIZES,)

    policy: SplitPolicy
    keep_original_order: bool = False
    keep_original_node_name: bool = False
    keep_original_input_name: bool = True
    partition_affix: str | None = None
    tuple_return: bool = False
    mark_meta: dict[str, Any] = {}

    @field_validator("partition_affix")
    @classmethod
    def _affix_names_a_module(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_]+", value):
            raise PydanticCustomError(
                "partition_affix",
                "'{value}' would not make a module name (submod_<affix>_<id>); use letters, digits, _",
                {"value": value})
        return value

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        for node in gm.graph.nodes:
            if node.op != "output":
                node.meta.update(self.mark_meta)
        assignment = self.policy.assignment(gm)
        _refuse_cycles(gm, assignment)
        qualname_map: dict[str, str] = {}
        split = split_module(
            gm, gm, lambda node: assignment[node.name], qualname_map,
            keep_original_order=self.keep_original_order, keep_original_node_name=self.keep_original_node_name,
            keep_original_input_name=self.keep_original_input_name, partition_affix=self.partition_affix,
            tuple_return=self.tuple_return,
        )
        children = dict(split.named_children())
        called = [n.target for n in split.graph.nodes if n.op == "call_module"]
        graphs = {name: children[name] for name in called if isinstance(children[name], GraphModule)}
        ctx.facts.update({
            "policy": type(self.policy).__name__,
            "assignment": assignment,
            "submodules": called,
            "node_counts": {name: len(sub.graph.nodes) for name, sub in graphs.items()},
            "nodes": {name: [n.name for n in sub.graph.nodes] for name, sub in graphs.items()},
            "qualname_map": dict(sorted(qualname_map.items())),
            "qualname_map_keys": sorted(qualname_map),
            "all_graph_modules": len(graphs) == len(called),
        })
        if self.mark_meta:
            ctx.facts["meta_kept"] = all(
                all(node.meta.get(key) == value for key, value in self.mark_meta.items())
                for sub in graphs.values() for node in sub.graph.nodes if node.op != "output")
        return split


def _refuse_cycles(gm: GraphModule, assignment: dict[str, int]) -> None:
    """split_module runs partitions one after another, so no partition may feed an earlier one;
    torch only says "cycle exists between partitions!", this names the partitions and a node."""
    deps = nx.DiGraph()
    for node in gm.graph.nodes:
        for used in node.all_input_nodes:
            if node.name in assignment and used.name in assignment and assignment[used.name] != assignment[node.name]:
                deps.add_edge(assignment[used.name], assignment[node.name], example=(used.name, node.name))
    try:
        cycle = nx.find_cycle(deps)
    except nx.NetworkXNoCycle:
        return
    used, user = deps.edges[cycle[-1]]["example"]
    path = " -> ".join(str(edge[0]) for edge in cycle) + f" -> {cycle[0][0]}"
    raise ValueError(f"the policy's partitions feed each other in a cycle ({path}; e.g. node {user} in partition "
                     f"{assignment[user]} uses {used} from partition {assignment[used]}); split_module runs partitions "
                     "one after another, so a partition may only use values of partitions before it")
