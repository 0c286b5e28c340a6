"""Split policies: which partition each node goes to when `SplitModule` splits a graph.

torch's `split_module` asks a callback for the partition of every compute node (placeholders,
`get_attr` and the output go wherever they are used) and trusts it to answer consistently; the
torch tests write those callbacks as closures with counters. A policy instead computes the
whole assignment once, in graph order, from parameters a config can state and a sweep can
vary; `SplitModule` hands `split_module` a lookup into it and records it.

    policy = RoundRobin(partitions=3)
    policy.assignment(gm)            # {'add': 0, 'linear': 1, 'clamp': 2, ...}

In a recipe a policy is the transform's nested component, picked from `conf/split_policy/`:

    - /split_policy@transforms.split.policy: cut_at
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, Callable, Literal

from pydantic import (BaseModel, ConfigDict, NonNegativeInt, PositiveInt, PrivateAttr, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule, Node

from fxflow.config.components import run_policy
from fxflow.config.targets import NotImported, TargetRefused
from fxflow.nodes import FxOp, compute_nodes, function_at


class SplitPolicy(BaseModel, ABC):
    """Base of split policies: `assignment(gm)` maps every compute node's name to a partition id."""

    model_config = ConfigDict(extra="forbid")

    def assignment(self, gm: GraphModule) -> dict[str, int]:
        return self.assign(gm, compute_nodes(gm))

    @abstractmethod
    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        """Partition ids (non-negative ints) for `nodes`, the graph's compute nodes in order."""


class RoundRobin(SplitPolicy):
    """Node i of the compute nodes goes to partition i mod `partitions` (test_subgraph_creation)."""

    partitions: PositiveInt = 2

    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        return {n.name: i % self.partitions for i, n in enumerate(nodes)}


class Constant(SplitPolicy):
    """Every node in one partition (test_subgraph_trivial_resnet, test_split_module_default_arg)."""

    partition: NonNegativeInt = 0

    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        return {n.name: self.partition for n in nodes}


class CutAt(SplitPolicy):
    """A new partition at every node that calls (`op`, `target`); nodes before the first match
    are in partition 0.

    `target` is written as the graph names it: a dotted function path for call_function
    (`operator.mul`), the module's path for call_module (`lin`, `layer1.0.conv1`), the method
    name for call_method; null matches every node of `op`. `mode: before` starts a partition
    at each match (test_split_qualname_mapping, test_split_module_kwargs_expansion);
    `mode: around` also puts each match in a partition of its own, so the nodes after it start
    another (test_split_module_dead_code). A policy that matches no node is refused: it would
    split nothing.
    """

    op: FxOp
    target: str | None = None
    mode: Literal["before", "around"] = "before"

    @field_validator("target")
    @classmethod
    def _function_imports(cls, target: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("op") == "call_function" and target is not None:
            function_at(target, called=False)
        return target

    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        wanted = function_at(self.target, called=False) if self.op == "call_function" and self.target is not None else self.target
        assigned: dict[str, int] = {}
        partition, after_match = 0, False
        for node in nodes:
            if node.op == self.op and (wanted is None or node.target == wanted):
                partition += 1
                after_match = self.mode == "around"
            elif after_match:
                partition += 1
                after_match = False
            assigned[node.name] = partition
        if partition == 0:
            seen = sorted({str(getattr(n.target, "__name__", n.target)) for n in nodes if n.op == self.op})
            raise ValueError(f"cut_at matches no node (op={self.op}, target={self.target}): nothing would be split; "
                             f"the graph's {self.op} targets are {seen or 'none'}")
        return assigned


class NodeGroups(SplitPolicy):
    """Partitions named node by node (test_subgraph_uniquename); nodes not named go to `default`.

    Names of placeholders and `get_attr` nodes are accepted and have no effect: `split_module`
    puts those wherever they are used. A name that is no node of the graph is refused, and so is
    a compute node left unnamed when there is no `default`.
    """

    node_to_partition: dict[str, NonNegativeInt]
    default: NonNegativeInt | None = None

    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        names = [n.name for n in gm.graph.nodes]
        unknown = [name for name in self.node_to_partition if name not in names]
        if unknown:
            raise ValueError(f"node_groups names no node {unknown}; the graph's nodes are {names}")
        unnamed = [n.name for n in nodes if n.name not in self.node_to_partition]
        if unnamed and self.default is None:
            raise ValueError(f"node_groups leaves {unnamed} in no partition; name them or set `default`")
        return {n.name: self.node_to_partition.get(n.name, self.default) for n in nodes}


class ByFunction(SplitPolicy):
    """A function of your own, `function(node) -> int`, named by its dotted path; it is called
    once per compute node, in graph order, so it may count as torch tests' callbacks do."""

    function: str
    _callable: Callable[[Node], Any] = PrivateAttr()  # resolved once, by the run's target policy

    @field_validator("function")
    @classmethod
    def _is_a_function(cls, path: str, info: ValidationInfo) -> str:
        try:
            obj = run_policy(info).user_function(path)
        except NotImported:
            return path
        except TargetRefused as exc:
            raise PydanticCustomError(
                "split_function", "'{path}' {why}; write the dotted path of a function node -> int ({accepted})",
                {"path": path, "why": exc.message, "accepted": exc.accepted}) from None
        try:
            inspect.signature(obj).bind(None)
        except TypeError:
            raise PydanticCustomError(
                "split_function", "'{path}{signature}' cannot be called with one node; write a function node -> int",
                {"path": path, "signature": str(inspect.signature(obj))}) from None
        return path

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> "ByFunction":
        self._callable = run_policy(info).user_function(self.function)
        return self

    def assign(self, gm: GraphModule, nodes: list[Node]) -> dict[str, int]:
        fn = self._callable
        assigned = {}
        for node in nodes:
            partition = fn(node)
            if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
                raise ValueError(f"{self.function}({node.name}) returned {partition!r}; a partition id is an int >= 0")
            assigned[node.name] = partition
        return assigned
