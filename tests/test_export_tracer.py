"""The torch.export tracer: an exported graph that fxflow can size, partition and split, computing
what the eager model computes. None of these needs transformers (tests/test_real_models.py does)."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from fxflow.exported import inline_disabled_regions, splits_to_slices
from fxflow.partitioning.sizing import size_nodes
from fxflow.tracers import ExportTracer


def _trace(model: nn.Module, **inputs: torch.Tensor) -> tuple[torch.fx.GraphModule, dict]:
    tracer = ExportTracer()
    return tracer.trace(model, inputs), tracer.facts()


def _single_tensor_nodes(gm: torch.fx.GraphModule, *inputs: torch.Tensor) -> None:
    """Sizing places every node (it refuses a node yielding none or several tensors)."""
    size_nodes(gm, list(inputs))


class _Structured(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return x + y, {"prod": x * y}


class _Pair(NamedTuple):
    a: torch.Tensor
    b: torch.Tensor


class _ReturnsNamedTuple(nn.Module):
    def forward(self, x: torch.Tensor) -> _Pair:
        return _Pair(x + 1, x - 1)


class _Splits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split(4, dim=-1)
        first, rest = x.split([1, 3], dim=-1)
        return q * k + v + first.sum() + rest.mean()


class _AutocastBlock(nn.Module):
    def __init__(self, enabled: bool):
        super().__init__()
        self.enabled = enabled
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.enabled):
            y = (x.float() * self.scale).sin()
        return y + 1


def test_exported_module_takes_inputs_by_name_and_returns_the_models_structure():
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    gm, facts = _trace(_Structured(), x=x, y=y)
    out = gm(x=x, y=y)
    assert type(out) is tuple and type(out[1]) is dict
    torch.testing.assert_close(out, _Structured()(x, y), rtol=0, atol=0)
    assert [n.target for n in gm.graph.nodes if n.op == "placeholder"] == ["x", "y"]
    assert type(gm.graph._codegen) is torch.fx.graph.CodeGen  # a module rebuilt from the graph returns the same
    assert facts["exported_by"] == f"torch.export {torch.__version__}" and facts["decomposed"] is False


def test_an_output_a_graph_cannot_hold_is_refused_by_its_type():
    with pytest.raises(TypeError, match="returns _Pair, which a graph output cannot hold"):
        _trace(_ReturnsNamedTuple(), x=torch.randn(2))


def test_splits_become_slices_and_compute_the_same():
    model, x = _Splits(), torch.randn(2, 4)
    gm, facts = _trace(model, x=x)
    assert facts["splits_sliced"] == 2
    assert not [n for n in gm.graph.nodes if "split" in str(n.target)]
    _single_tensor_nodes(gm, x)
    torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    assert splits_to_slices(gm) == 0  # nothing left to do


def test_an_autocast_off_block_is_inlined_and_one_turning_it_on_is_refused():
    model, x = _AutocastBlock(enabled=False), torch.randn(2, 4)
    gm, facts = _trace(model, x=x)
    assert facts["regions_inlined"] == 1 and facts["metadata_asserts_removed"] >= 1
    assert not [n for n in gm.graph.nodes if "wrap_with" in str(n.target)]
    _single_tensor_nodes(gm, x)
    torch.testing.assert_close(gm(x), model(x), rtol=0, atol=0)
    assert inline_disabled_regions(gm) == 0
    with pytest.raises(TypeError, match="turns autocast on inside the model"):
        _trace(_AutocastBlock(enabled=True), x=x)


def test_a_plain_function_or_a_non_tensor_input_is_refused_with_the_way_out():
    with pytest.raises(TypeError, match="pick tracer=symbolic for a plain function"):
        ExportTracer().trace(torch.relu, {"x": torch.randn(2)})
    with pytest.raises(TypeError, match=r"input\(s\) k are not \(model.inputs\)"):
        ExportTracer().trace(_Structured(), {"x": torch.randn(2), "k": 3})


def test_mini_gpt_exported_partitions_over_four_devices_and_computes_the_logits(run_recipe):
    """partition_gpt with tracer=export, two blocks: 93 ATen nodes; parameters and buffers are
    get_attr nodes, still sized and placed, and the split model is equivalent."""
    run = run_recipe("partition_gpt", "tracer=export", "model.module.layers=2", "devices=four_of_160kb",
                     "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    m = run.metrics
    assert m["trace.tracer"] == "ExportTracer" and m["trace.exported_by"] == f"torch.export {torch.__version__}"
    assert m["trace.graph_node_count"] == 93 and m["trace.graph.ops.get_attr"] > 0
    assert m["partition.num_partitions"] == 4 and m["partition.idle_devices"] == []
    assert run.check("equivalence.partition")["passed"]
    assert m["partition.graph.ops.call_module"] == 4
