"""Split a graph into submodules with torch's `split_module`, partitions chosen by a configured policy."""

from __future__ import annotations

import copy
import re
from typing import Any, ClassVar

import networkx as nx
from pydantic import field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx.passes.split_module import split_module

from fxflow.lazy_code import compiled_on_call
from fxflow.stages import GraphProperty, StageFacts
from fxflow.transforms.base import StageContext, Transform
from fxflow.transforms.submodules import (
    called_submodules,
    compute_nodes,
    graph_node_names,
    has_attribute,
    original_name,
    tag_original_names,
)
from fxflow.transforms.split_policies import SplitPolicy

# Key of the qualname map (new -> original qualified name of every attribute moved into a
# submodule) that torch's split_module gives beside the module, kept in the split module's meta.
QUALNAME_MAP = "fxflow.split.qualname_map"


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

    Facts, read from the returned module: `assignment` (compute node -> partition of the
    submodule that holds it), `submodules` (names in call order), `node_counts` and `nodes` per
    submodule, `qualname_map` (new -> original qualified name of every attribute moved into a
    submodule, carried in the module's meta) with its sorted `qualname_map_keys`,
    `all_graph_modules`, and with `mark_meta` `meta_kept` (every non-output node of every
    submodule still carries the marks); `policy` (the policy's class).
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
        # The marks below and split_module write onto the nodes: they go on a graph of its own, so the
        # incoming stage stays as it was. The weights are shared, not copied (a 1B-parameter model
        # would otherwise be held twice), as tracing shares them with the eager model.
        gm = compiled_on_call(gm, copy.deepcopy(gm.graph), type(gm).__name__)
        for node in gm.graph.nodes:
            if node.op != "output":
                node.meta.update(self.mark_meta)
        tag_original_names(gm)
        assignment = self.policy.assignment(gm)
        _refuse_cycles(gm, assignment)
        qualname_map: dict[str, str] = {}
        split = split_module(
            gm, gm, lambda node: assignment[node.name], qualname_map,
            keep_original_order=self.keep_original_order, keep_original_node_name=self.keep_original_node_name,
            keep_original_input_name=self.keep_original_input_name, partition_affix=self.partition_affix,
            tuple_return=self.tuple_return,
        )
        split.meta[QUALNAME_MAP] = dict(qualname_map)  # torch's side output, kept with the module it describes
        ctx.facts["policy"] = type(self.policy).__name__
        return split

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        """Read from the returned module: the submodules its graph calls, their nodes, which
        partition each compute node landed in (by the submodule holding it), and the qualname map
        it carries, each of whose names it must hold."""
        prefix = f"submod_{self.partition_affix}_" if self.partition_affix else "submod_"
        subs = called_submodules(returned, prefix)
        graphs = {name: sub for name, sub in subs.items() if isinstance(sub, GraphModule)}
        order = {n.name: i for i, n in enumerate(given.graph.nodes)}
        landed = [(original_name(node), _partition_id(name, prefix))
                  for name, sub in graphs.items() for node in compute_nodes(sub)]
        qualname_map = dict(sorted(getattr(returned, "meta", {}).get(QUALNAME_MAP, {}).items()))
        missing = [name for name in qualname_map if not has_attribute(returned, name)]
        if missing:
            raise ValueError(f"the split module's qualname map names {missing}, which the module does not hold")
        facts: dict[str, Any] = {
            "assignment": dict(sorted(landed, key=lambda item: order.get(item[0], len(order)))),
            "submodules": list(subs),
            "node_counts": {name: len(sub.graph.nodes) for name, sub in graphs.items()},
            "nodes": graph_node_names(graphs),
            "qualname_map": qualname_map,
            "qualname_map_keys": sorted(qualname_map),
            "all_graph_modules": bool(subs) and len(graphs) == len(subs),
        }
        if self.mark_meta:
            facts["meta_kept"] = bool(graphs) and all(
                all(node.meta.get(key) == value for key, value in self.mark_meta.items())
                for sub in graphs.values() for node in sub.graph.nodes if node.op != "output")
        return facts


def _partition_id(submodule: str, prefix: str) -> int | str:
    """The partition id in a submodule's name (`submod_2` -> 2)."""
    rest = submodule.removeprefix(prefix)
    return int(rest) if rest.isdigit() else rest


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
