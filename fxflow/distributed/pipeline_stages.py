"""Cut a split module whose partitions form a chain into the stage modules of a pipeline.

torch.distributed.pipelining runs one `PipelineStage` per rank; stage k receives the tensors
stage k-1 returned, as positional arguments, and the last stage's return value is the
output. A split module (fxflow's or torch's partitioner, `split_module`) is more general: a
top-level graph calling `submod_<pid>` children, picking items out of their tuples, doing
some glue, and passing values (inputs among them) past the next stage. `pipeline_stages`
turns the split into that narrower form without changing what it computes:

- stages follow the submodule calls in graph order; consecutive partitions on the same device
  are one stage (one rank);
- every other top-level node runs in the first stage where its inputs are all available;
- a value computed (or input) before stage k and read at or after it is carried through
  every stage in between, so values that skip stages arrive.

    cut = pipeline_stages(split, placement, example_inputs)
    cut.modules[k]        # a GraphModule: stage k's positional tensors in, the next stage's out
    cut.describe()        # per stage: partitions, device, values in and out

It refuses (`NotAPipeline`, saying why) a split that is not a pipeline: partitions that do
not form a chain, a device holding partitions that are not consecutive, a value crossing
stages that is not a tensor, an input that is not a tensor with the batch dimension.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import Graph, GraphModule, Interpreter, Node

from fxflow.distributed.executor import picklable
from fxflow.distributed.microbatch import batch_inputs
from fxflow.distributed.plan import SlotAssignment, build_plan

_INPUT = -1  # the stage of placeholders: given to stage 0 by the schedule


class NotAPipeline(ValueError):
    """The split module cannot run as a chain of pipeline stages; the message says why."""


@dataclass
class PipelineCut:
    """Stage modules of a chain split, and what each holds."""

    modules: list[GraphModule]
    partitions: list[list[int]]  # partition ids per stage
    device_names: list[str | None]  # the device list's name per stage
    devices: list[str]  # torch device per stage
    inputs: list[list[str]]  # value names each stage receives (stage 0: the module's inputs)
    outputs: list[list[str]]  # value names each stage returns (the last: "output")
    input_names: list[str]  # the split module's placeholders, in order
    partition_dag: list[list[Any]]  # [from, to] over partition ids, "input", "output"

    @property
    def num_stages(self) -> int:
        return len(self.modules)

    def describe(self) -> list[dict[str, Any]]:
        return [{"stage": k, "rank": k, "partitions": self.partitions[k], "device": self.devices[k],
                 "device_name": self.device_names[k], "inputs": self.inputs[k], "outputs": self.outputs[k]}
                for k in range(self.num_stages)]


def pipeline_stages(split: GraphModule, placement: SlotAssignment | Mapping[int, Any],
                    example_inputs: Mapping[str, Any]) -> PipelineCut:
    """The pipeline stages of `split` placed by `placement`; `example_inputs` (by placeholder name)
    show which values are tensors. Raises NotAPipeline when the split is not a chain."""
    plan = build_plan(split, placement)
    if not plan.is_chain():
        edges = [(u, v) for u, v in plan.partition_dag.edges if isinstance(u, int) and isinstance(v, int)]
        raise NotAPipeline(f"its partitions do not form a chain (partition edges {edges}): a pipeline passes "
                           "activations from one stage to the next only")
    slots = SlotAssignment.of(placement).slots
    placeholders = [n for n in split.graph.nodes if n.op == "placeholder"]
    input_names = [n.name for n in placeholders]
    _check_inputs(example_inputs, input_names)

    stage_of: dict[Node, int] = {}
    stage_ranks: list[int] = []
    partitions: list[list[int]] = []
    for node in split.graph.nodes:
        if node.op != "call_module" or not str(node.target).startswith("submod_"):
            continue
        pid = int(str(node.target).split("_", 1)[1])
        rank = slots[pid].rank
        if not stage_ranks or stage_ranks[-1] != rank:
            if rank in stage_ranks:
                raise NotAPipeline(f"device {slots[pid].device_name or rank} holds partitions that are not consecutive "
                                   f"in the chain ({partitions[stage_ranks.index(rank)]} and {pid}): a pipeline stage "
                                   "is one run of the chain on one device")
            stage_ranks.append(rank)
            partitions.append([])
        partitions[-1].append(pid)
        stage_of[node] = len(stage_ranks) - 1
    last = len(stage_ranks) - 1
    for node in split.graph.nodes:
        if node.op == "placeholder":
            stage_of[node] = _INPUT
        elif node.op == "get_attr":
            continue  # copied into every stage that reads it
        elif node not in stage_of:
            inputs = [stage_of[a] for a in node.all_input_nodes if a.op != "get_attr"]
            stage_of[node] = last if node.op == "output" else max([0, *inputs])

    is_tensor = _tensor_values(split, example_inputs)
    order = {n: i for i, n in enumerate(split.graph.nodes)}
    carried: list[list[Node]] = []  # values stage k hands to stage k+1
    for k in range(last):
        live = sorted({a for n, s in stage_of.items() if s > k for a in n.all_input_nodes
                       if a.op != "get_attr" and stage_of[a] <= k}, key=order.__getitem__)
        wrong = [a.name for a in live if not is_tensor.get(a.name, False)]
        if wrong:
            raise NotAPipeline(f"values {wrong} cross from stage {k} to stage {k + 1} but are not tensors: pipeline "
                               "stages pass tensors only")
        carried.append(live)

    output = next(n for n in split.graph.nodes if n.op == "output")
    modules, ins, outs = [], [], []
    for k in range(last + 1):
        received = placeholders if k == 0 else carried[k - 1]
        returned = carried[k] if k < last else None
        modules.append(_stage_module(split, k, stage_of, received, returned, output))
        ins.append([n.name for n in received])
        outs.append([n.name for n in returned] if returned is not None else ["output"])
    devices = [slots[p[0]].device for p in partitions]
    names = [slots[p[0]].device_name for p in partitions]
    dag = [[u, v] for u, v in plan.partition_dag.edges]
    return PipelineCut(modules, partitions, names, devices, ins, outs, input_names, dag)


def _check_inputs(example_inputs: Mapping[str, Any], names: list[str]) -> None:
    """Every input must be a tensor split along its batch dimension (the schedule cuts them all on dim 0)."""
    given = {k: example_inputs[k] for k in names if k in example_inputs}
    not_tensors = [k for k, v in given.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise NotAPipeline(f"inputs {not_tensors} are not tensors: a pipeline schedule splits every input into "
                           "micro-batches along dim 0")
    missing = [k for k in names if k not in given]
    if missing:
        raise NotAPipeline(f"inputs {missing} have no value: a pipeline schedule passes every input")
    unbatched = sorted(set(given) - set(batch_inputs(given)))
    if unbatched:
        raise NotAPipeline(f"inputs {unbatched} do not share the first input's batch dimension (dim 0): a pipeline "
                           "schedule splits every input into micro-batches along dim 0")


def _tensor_values(split: GraphModule, example_inputs: Mapping[str, Any]) -> dict[str, bool]:
    """Which top-level values are tensors, from one run of the split on the example inputs."""
    seen: dict[str, bool] = {}

    class Recorder(Interpreter):
        def run_node(self, n: Node) -> Any:
            value = super().run_node(n)
            seen[n.name] = isinstance(value, torch.Tensor)
            return value

    names = [n.name for n in split.graph.nodes if n.op == "placeholder"]
    with torch.no_grad():
        Recorder(split).run(*(example_inputs[k] for k in names))
    return seen


def _stage_module(split: GraphModule, k: int, stage_of: dict[Node, int], received: list[Node],
                  returned: list[Node] | None, output: Node) -> GraphModule:
    """Stage k's nodes in a GraphModule of their own: `received` in (positionally), `returned` out
    (a tuple), or the split's output for the last stage. Parameter names stay the split's."""
    graph = Graph()
    env: dict[Node, Node] = {}
    root: dict[str, Any] = {}
    for node in received:
        env[node] = graph.placeholder(node.name)
    for node in split.graph.nodes:
        if stage_of.get(node) != k or node.op in ("placeholder", "output"):
            continue
        for arg in node.all_input_nodes:
            if arg.op == "get_attr" and arg not in env:
                root[arg.target] = operator.attrgetter(arg.target)(split)
                env[arg] = graph.node_copy(arg, env.__getitem__)
        if node.op == "call_module":
            root[node.target] = picklable(split.get_submodule(node.target))  # the stage travels pickled
        env[node] = graph.node_copy(node, env.__getitem__)
    if returned is None:
        for arg in output.all_input_nodes:
            if arg.op == "get_attr" and arg not in env:
                root[arg.target] = operator.attrgetter(arg.target)(split)
                env[arg] = graph.node_copy(arg, env.__getitem__)
        graph.output(torch.fx.map_arg(output.args[0], env.__getitem__))
    else:
        graph.output(tuple(env[n] for n in returned))
    graph.lint()
    return GraphModule(root, graph, class_name=f"Stage{k}")
