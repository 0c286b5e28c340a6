"""Unit tests of the tracer components (fxflow.tracers)."""

from __future__ import annotations

import operator

import pytest
import torch
from hydra.utils import get_class
from pydantic import ValidationError
from torch import nn
from torch.fx import GraphModule
from torch.fx.proxy import TraceError

from fxflow.tracers import MetaTracer, RewritingTracer, SymbolicTracer, Tracer


class Block(nn.Module):
    """A custom submodule to keep as a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


class WithBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x) + x)


class Asserting(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 1, "x must be 1-d"
        return x * 3


class AssertingRandom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 1
        return x + torch.rand(4)


class ShapeBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            return torch.relu(x) * 2
        return x - 1


def add_relu(x, y):
    return torch.relu(x) + y


def add_random(x):
    return x + torch.rand(4)


def scale(x, flag):
    return x * 2 if flag else x


pytestmark = pytest.mark.filterwarnings("ignore:Could not compute metadata:UserWarning")

BLOCK_PATH = f"{Block.__module__}.Block"


def nodes(gm: GraphModule) -> list[tuple[str, object]]:
    return [(n.op, n.target) for n in gm.graph.nodes]


def test_block_is_importable_by_its_dotted_path():
    assert get_class(BLOCK_PATH) is Block


def test_tracers_are_tracer_components():
    for cls in (SymbolicTracer, RewritingTracer, MetaTracer):
        assert issubclass(cls, Tracer)
    with pytest.raises(ValidationError):
        SymbolicTracer(unknown=1)


# --------------------------------------------------------------------------- SymbolicTracer


def test_symbolic_tracer_on_a_module_matches_eager():
    torch.manual_seed(0)
    model = WithBlock()
    x = torch.randn(3, 4)
    gm = SymbolicTracer().trace(model, {"x": x})
    assert isinstance(gm, GraphModule)
    assert type(gm).__name__ == "WithBlock"
    # traced through Block: its Linear is a call_module, relu a call_function
    assert ("call_module", "block.linear") in nodes(gm)
    assert ("call_function", torch.relu) in nodes(gm)
    assert ("call_module", "block") not in nodes(gm)
    torch.testing.assert_close(gm(x), model(x))


def test_symbolic_tracer_on_a_function_matches_eager():
    x, y = torch.randn(4), torch.randn(4)
    gm = SymbolicTracer().trace(add_relu, {"x": x, "y": y})
    assert isinstance(gm, GraphModule)
    assert [n.name for n in gm.graph.nodes if n.op == "placeholder"] == ["x", "y"]
    assert ("call_function", operator.add) in nodes(gm)
    torch.testing.assert_close(gm(x, y), add_relu(x, y))


def test_symbolic_tracer_on_a_function_with_a_tensor_constant():
    torch.manual_seed(0)
    gm = SymbolicTracer().trace(add_random, {"x": torch.zeros(4)})
    assert ("get_attr", "_tensor_constant0") in nodes(gm)


def test_leaf_modules_keeps_a_custom_module_as_one_node(trust):
    trust(Block.__module__)
    torch.manual_seed(0)
    model = WithBlock()
    x = torch.randn(3, 4)
    gm = SymbolicTracer(leaf_modules=[BLOCK_PATH]).trace(model, {"x": x})
    assert ("call_module", "block") in nodes(gm)
    assert ("call_module", "block.linear") not in nodes(gm)
    assert ("call_function", torch.relu) not in nodes(gm)
    torch.testing.assert_close(gm(x), model(x))


def test_leaf_modules_must_be_importable_module_classes():
    with pytest.raises(ValidationError, match="cannot be imported"):
        SymbolicTracer(leaf_modules=["torch.nn.NoSuchThing"])
    with pytest.raises(ValidationError, match="is not an nn.Module class"):
        SymbolicTracer(leaf_modules=["torch.nn.Parameter"])


def test_concrete_args_specialise_the_trace():
    x = torch.randn(4)
    gm = SymbolicTracer(concrete_args={"flag": True}).trace(scale, {"x": x})
    assert ("call_function", operator.mul) in nodes(gm)
    torch.testing.assert_close(gm(x, True), x * 2)


def test_symbolic_tracer_refuses_shape_dependent_control_flow():
    with pytest.raises(TraceError):
        SymbolicTracer().trace(ShapeBranch(), {"x": torch.randn(4)})


def test_symbolic_tracer_refuses_assert_on_a_proxy():
    with pytest.raises(TraceError):
        SymbolicTracer().trace(Asserting(), {"x": torch.randn(4)})


# --------------------------------------------------------------------------- RewritingTracer


def test_rewriting_tracer_turns_assert_into_torch_assert():
    model = Asserting()
    x = torch.randn(4)
    gm = RewritingTracer().trace(model, {"x": x})
    assert any(n.op == "call_function" and n.target is torch._assert for n in gm.graph.nodes)
    torch.testing.assert_close(gm(x), model(x))
    # the assert survives in the graph: a 2-d input is refused
    with pytest.raises(AssertionError, match="x must be 1-d"):
        gm(torch.randn(2, 2))


def test_rewriting_tracer_on_a_nested_function():
    def checked(x):
        assert x.shape[0] == 4
        return x + 1

    x = torch.randn(4)
    gm = RewritingTracer().trace(checked, {"x": x})
    assert any(n.op == "call_function" and n.target is torch._assert for n in gm.graph.nodes)
    torch.testing.assert_close(gm(x), x + 1)


def checked_module_level(x):
    """A module-level function: its name is a global of this module, like every `_target_`."""
    assert x.dim() == 1, "x must be 1-d"
    return torch.relu(x) * scale_factor


scale_factor = 3.0


def test_torchs_rewriting_tracer_refuses_a_module_level_function_that_ours_traces():
    from torch.fx.experimental.rewriter import RewritingTracer as TorchRewritingTracer

    with pytest.raises(AssertionError, match="Expected 1 new key, got 0"):
        TorchRewritingTracer().trace(checked_module_level)
    x = torch.randn(4)
    gm = RewritingTracer().trace(checked_module_level, {"x": x})
    assert ("call_function", torch._assert) in nodes(gm)
    torch.testing.assert_close(gm(x), checked_module_level(x))
    with pytest.raises(AssertionError, match="x must be 1-d"):
        gm(torch.randn(2, 2))


def test_rewriting_tracer_keeps_what_a_nested_function_captured():
    offset = torch.full((4,), 2.0)

    def shifted(x):
        assert x.shape[0] == 4, "four rows"
        return x + offset

    x = torch.randn(4)
    gm = RewritingTracer().trace(shifted, {"x": x})
    torch.testing.assert_close(gm(x), x + 2)
    with pytest.raises(AssertionError, match="four rows"):
        gm(torch.randn(3))


def test_rewriting_tracer_traces_a_lambda_as_it_is():
    gm = RewritingTracer().trace(lambda x: x * 2, {"x": torch.ones(2)})
    assert ("call_function", operator.mul) in nodes(gm)


def test_rewriting_tracer_on_a_module_with_a_tensor_constant():
    torch.manual_seed(0)
    gm = RewritingTracer().trace(AssertingRandom(), {"x": torch.zeros(4)})
    assert ("get_attr", "_tensor_constant0") in nodes(gm)


# --------------------------------------------------------------------------- MetaTracer


def test_meta_tracer_traces_shape_dependent_control_flow():
    model = ShapeBranch()
    x = torch.randn(4)
    gm = MetaTracer().trace(model, {"x": x})
    assert isinstance(gm, GraphModule)
    # specialised on the example's shape: the x.shape[0] > 2 branch
    assert ("call_function", operator.mul) in nodes(gm)
    assert ("call_function", operator.sub) not in nodes(gm)
    torch.testing.assert_close(gm(x), model(x))
    other = torch.randn(4)
    torch.testing.assert_close(gm(other), model(other))


def test_meta_tracer_takes_the_other_branch_for_a_small_input():
    model = ShapeBranch()
    x = torch.randn(2)
    gm = MetaTracer().trace(model, {"x": x})
    assert ("call_function", operator.sub) in nodes(gm)
    torch.testing.assert_close(gm(x), model(x))


class ShapeVsLiteral(nn.Module):
    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        if x.shape[0] > k:
            return x * k
        return x


def test_meta_tracer_specialises_literal_inputs_and_keeps_tensors_on_cpu():
    x = torch.randn(4)
    gm = MetaTracer().trace(ShapeVsLiteral(), {"x": x, "k": 2})
    assert x.device.type == "cpu"  # the example input itself is not moved to meta
    torch.testing.assert_close(gm(x, 2), x * 2)
    # k was specialised to 2: another value is refused by the guard torch adds
    with pytest.raises(AssertionError):
        gm(x, 3)
