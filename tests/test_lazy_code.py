"""A module compiled on its first call: its code text without compiling, the same text once
compiled, a recompile that drops stale text, and steps that get it compiled only when they need it."""

from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, symbolic_trace

from fxflow.lazy_code import CompiledOnCall, compile_now, compiled_on_call
from fxflow.tracers import SymbolicTracer


class _Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):  # unannotated: torch.jit.script cannot read the traced code's annotation names
        return torch.relu(self.lin(x)) + 1


def _lazy() -> tuple[torch.nn.Module, GraphModule]:
    model = _Small()
    traced = symbolic_trace(model)
    return model, compiled_on_call(traced, traced.graph, "Small")


def test_code_is_text_before_any_compile_and_equals_the_compiled_code():
    model, gm = _lazy()
    text = gm.code
    assert gm._needs_recompile(), "reading the code compiled the forward"
    assert "relu" in text and "self.lin" in text
    x = torch.rand(2, 4)
    torch.testing.assert_close(gm(x), model(x))
    assert not gm._needs_recompile()
    assert gm.code == text


def test_the_first_call_compiles_the_code_already_generated_instead_of_generating_it_again(monkeypatch):
    model, gm = _lazy()
    generated = []
    real = torch.fx.Graph.python_code
    monkeypatch.setattr(torch.fx.Graph, "python_code", lambda self, *a, **k: generated.append(1) or real(self, *a, **k))
    text = gm.code
    x = torch.rand(2, 4)
    torch.testing.assert_close(gm(x), model(x))
    assert len(generated) == 1, f"the graph's code was generated {len(generated)} times"
    assert gm.code == text and "python_code" not in vars(gm.graph)
    gm.recompile()  # a recompile after a reading-free edit generates afresh, once
    torch.testing.assert_close(gm(x), model(x))
    assert len(generated) == 2


def test_a_recompile_after_a_graph_edit_drops_the_kept_text():
    _, gm = _lazy()
    before = gm.code
    add = next(n for n in gm.graph.nodes if n.target is operator.add)
    add.target = operator.sub
    gm.recompile()
    assert "relu - 1" in gm.code and "relu + 1" in before
    x = torch.rand(2, 4)
    torch.testing.assert_close(gm(x), torch.relu(gm.lin(x)) - 1)


def test_each_module_keeps_its_own_text():
    _, first = _lazy()
    _, second = _lazy()
    first.graph.erase_node(next(n for n in first.graph.nodes if n.op == "output"))
    first.graph.output(next(n for n in first.graph.nodes if n.target is torch.relu))
    first.graph.eliminate_dead_code()
    first.recompile()
    assert "relu + 1" in second.code and "relu + 1" not in first.code


def test_compile_now_compiles_a_lazy_module_and_leaves_others():
    _, gm = _lazy()
    compile_now(gm)
    assert not gm._needs_recompile()
    plain = torch.nn.Linear(2, 2)  # not a GraphModule: no recompile to call
    compile_now(plain)
    x = torch.rand(1, 2)
    torch.testing.assert_close(plain(x), torch.nn.functional.linear(x, plain.weight, plain.bias))


def test_the_symbolic_tracer_gives_a_module_compiled_on_call_that_scripts_once_compiled():
    model = _Small()
    gm = SymbolicTracer().trace(model, {})
    assert isinstance(gm, CompiledOnCall) and gm._needs_recompile()
    compile_now(gm)
    scripted = torch.jit.script(gm)
    x = torch.rand(2, 4)
    torch.testing.assert_close(scripted(x), model(x))
