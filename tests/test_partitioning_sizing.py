"""size_nodes gives exactly torch's node sizes, from one shape propagation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.passes import graph_manipulation

from fxflow.models.graph_families import TransformerStack
from fxflow.models.partition_examples import DiamondLinear, LinearWithConstant, StoredConstants
from fxflow.models.recommendation import SparseNN
from fxflow.partitioning import size_nodes


class SharedLinear(nn.Module):
    """One Linear called twice: each call carries the module's weights, as torch counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.low = nn.Linear(4, 4).to(torch.float16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(torch.relu(self.lin(x)))
        return self.low(y.half()).float() + y


def _sizes(gm) -> list[tuple[str, tuple[int, int]]]:
    """(op, size) of every sized node in graph order (constants get new names in a second trace)."""
    return [(n.op, tuple(n.size_bytes)) for n in gm.graph.nodes if hasattr(n, "size_bytes")]


CASES = [
    (LinearWithConstant, lambda: [torch.rand(4), torch.rand(4)]),
    (DiamondLinear, lambda: [torch.rand(4)]),
    (StoredConstants, lambda: [torch.rand(4)]),
    (lambda: SparseNN(table_rows=(50, 80, 30)), lambda: [torch.rand(2, 4), torch.randint(10, (8,)), torch.tensor([0, 4])]),
    (lambda: TransformerStack(2), lambda: [torch.rand(2, 4, 8)]),
    (SharedLinear, lambda: [torch.rand(3, 4)]),
]


@pytest.mark.parametrize("build, inputs", CASES)
def test_same_sizes_as_torch(build, inputs):
    torch.manual_seed(0)
    model = build()
    args = inputs()
    theirs, ours = symbolic_trace(model), symbolic_trace(model)
    graph_manipulation.get_size_of_all_nodes(theirs, args)
    size_nodes(ours, args)
    assert _sizes(ours) == _sizes(theirs)
    assert len(_sizes(ours)) == len(ours.graph.nodes) - 1  # every node but the output


def test_reuses_shape_metadata_and_refuses_without_it():
    gm = symbolic_trace(DiamondLinear())
    with pytest.raises(RuntimeError, match="no tensor metadata"):
        size_nodes(gm)
    size_nodes(gm, [torch.rand(4)])
    first = _sizes(gm)
    for node in gm.graph.nodes:
        node.__dict__.pop("size_bytes", None)
    size_nodes(gm)
    assert _sizes(gm) == first


def test_a_node_that_fails_on_the_inputs_is_named_plainly(run_recipe, capsys):
    """fxflow's sizing runs the inputs through the graph itself: the error names the input key and
    torch's own words, and prints no traceback (torch's ShapeProp prints one)."""
    run = run_recipe("large_node_error", "model.inputs.a.shape=[3,5]")
    message = run.summary["error"]["message"]
    assert run.summary["status"] == "error" and "model.inputs" in message
    assert "mat1 and mat2 shapes cannot be multiplied (3x5 and 4x4)" in message
    assert "Traceback" not in capsys.readouterr().err
