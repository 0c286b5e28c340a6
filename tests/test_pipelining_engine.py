"""The execute stage's pipelining engine: fxflow's chain cut run as torch.distributed.pipelining
stages, proven against the eager model (forward) and against the split module run eagerly
(a 1F1B training step's losses and gradients); a placement that is not a chain is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.passes.split_module import split_module

from fxflow.distributed.pipeline_stages import NotAPipeline, pipeline_stages
from fxflow.distributed.plan import Slot
from fxflow.models.staged import ParallelBranches
from process_tree import alive  # tests/ is on sys.path

QUICK = ("transforms.execute.repeats=2", "transforms.execute.warmup=1", "expect.strict=true")


class Skip(nn.Module):
    """Three linears and the input added back at the end: `x` skips the middle stage."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x))))) + x


def split_by(model: nn.Module, part_of: dict[str, int]) -> torch.fx.GraphModule:
    gm = symbolic_trace(model)
    owner = {}
    for node in gm.graph.nodes:  # a node joins the partition of the last named node at or before it
        owner[node.name] = part_of.get(node.name, owner.get(node.prev.name, 0) if node.prev.op != "root" else 0)
    return split_module(gm, model, lambda n: owner[n.name])


def test_values_that_skip_a_stage_are_carried_through_it():
    torch.manual_seed(0)
    model = Skip()
    split = split_by(model, {"a": 0, "b": 1, "c": 2})
    x = torch.randn(4, 8)
    cut = pipeline_stages(split, {0: Slot(1), 1: Slot(2), 2: Slot(3)}, {"x": x})
    assert cut.num_stages == 3 and cut.partitions == [[0], [1], [2]]
    assert cut.inputs[1] == ["x", "submod_0"] and cut.inputs[2] == ["x", "submod_1"]  # x rides through stage 1
    values = cut.modules[0](x)
    values = cut.modules[1](*values)
    torch.testing.assert_close(cut.modules[2](*values), model(x), rtol=0, atol=0)
    # two partitions on one device are one stage
    merged = pipeline_stages(split, {0: Slot(1), 1: Slot(1), 2: Slot(2)}, {"x": x})
    assert merged.partitions == [[0, 1], [2]] and merged.inputs[1] == ["x", "submod_1"]


def test_what_is_not_a_pipeline_is_refused_with_the_reason():
    x = torch.randn(4, 8)
    split = split_by(Skip(), {"a": 0, "b": 1, "c": 2})
    with pytest.raises(NotAPipeline, match=r"not consecutive in the chain \(\[0\] and 2\)"):
        pipeline_stages(split, {0: Slot(1), 1: Slot(2), 2: Slot(1)}, {"x": x})
    with pytest.raises(NotAPipeline, match=r"inputs \['x'\] are not tensors"):
        pipeline_stages(split, {0: Slot(1), 1: Slot(2), 2: Slot(3)}, {"x": 3})
    branches = ParallelBranches(width=8, branches=2)
    dag = split_by(branches, {"stem": 0, "branch_0_0": 1, "branch_1_0": 2, "cat": 3})
    with pytest.raises(NotAPipeline, match=r"do not form a chain"):
        pipeline_stages(dag, {0: Slot(1), 1: Slot(2), 2: Slot(3), 3: Slot(1)}, {"x": torch.randn(4, 8)})


def test_gpipe_forward_on_separate_processes_matches_eager(run_recipe):
    run = run_recipe("pipelining_chain", *QUICK, "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    proof = run.check("equivalence.execute")
    assert proof["passed"] and proof["input_sets"] == "3/3"
    metrics = run.metrics
    assert metrics["execute.graph.module"] == "fxflow.distributed.pipelining.PipelinedModule"
    assert metrics["execute.schedule"] == "gpipe" and metrics["execute.microbatches"] == 4
    stages = [metrics[f"execute.stages.{k}.partitions"] for k in range(4)]
    assert stages == [[0], [1], [2], [3]]
    pids = [metrics[f"execute.ranks.{k}.pid"] for k in range(4)]
    assert len(set(pids)) == 4 and None not in pids
    assert [pid for pid in pids if alive(pid)] == []  # closed with the run


def test_1f1b_training_step_matches_eager_gradients(run_recipe):
    run = run_recipe("pipelining_training", *QUICK, "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    metrics = run.metrics
    assert metrics["execute.training.matches"] is True and metrics["execute.training.unmatched_parameters"] == []
    assert metrics["execute.training.max_abs_grad_diff"] < 1e-5 and len(metrics["execute.training.losses"]) == 4
    assert metrics["execute.step"] == "train" and metrics["execute.step_s"] > 0


def test_pipelining_refuses_a_dag_and_too_few_microbatches(run_recipe):
    run = run_recipe("distributed_branches", "transforms.execute.engine=pipelining", "report.pictures=false")
    assert run.summary["status"] == "error"
    message = run.summary["error"]["message"]
    assert "transforms.execute.engine=pipelining" in message and "do not form a chain" in message
    assert "engine=fxflow" in message
    run = run_recipe("pipelining_chain", "transforms.execute.schedule=1f1b", "transforms.execute.microbatches=2")
    assert run.summary["status"] == "error"
    assert "transforms.execute.microbatches=2: schedule 1f1b needs at least as many micro-batches as stages (4)" in \
        run.summary["error"]["message"]
    run = run_recipe("distributed_chain", "transforms.execute.schedule=1f1b")
    assert run.summary["status"] == "error" and "schedule=1f1b applies to engine=pipelining only" in \
        run.summary["error"]["message"]
