"""Split modules executed with one process per device give the eager model's outputs, whatever
crosses between processes: nested containers, plain ints, values larger than one message.
(The recipes' runs cover partitioner output end to end: tests/test_distributed_recipes.py.)"""

from __future__ import annotations

import torch
from torch import nn
from torch.fx import symbolic_trace
from torch.fx.passes.split_module import split_module

from fxflow.checks.equivalence import compare_outputs as compare
from fxflow.distributed import DistributedModule, build_plan, run_partitioned
from fxflow.distributed.wire import CHUNK_BYTES


class _Nested(nn.Module):
    def forward(self, x: torch.Tensor, scale: int) -> dict:
        parts = torch.split(x, 2, dim=1)
        rows = x.size(0)
        y = torch.cat(parts, dim=1) * scale + rows
        return {"y": y, "parts": [parts[0], parts[1]], "rows": rows, "scale": scale}


def test_nested_and_non_tensor_values_cross_processes():
    model = _Nested()
    gm = symbolic_trace(model)
    stage = {"split": 0, "size": 0}
    split = split_module(gm, model, lambda node: stage.get(node.name, 1))
    # the tuple from torch.split and the int from size() cross as they are
    edges = build_plan(split, {0: (1, "cpu"), 1: (2, "cpu")}).edges
    assert {"scale", "getitem", "getitem_1"} <= {e.value for e in edges}
    x = torch.randn(3, 4)
    with DistributedModule(split, {0: (1, "cpu"), 1: (2, "cpu")}) as dm:
        out = dm(x, 3)
    expected = model(x, 3)
    ok, detail, _ = compare(expected, out, {})
    assert ok, detail
    assert type(out["parts"]) is list and out["rows"] == 3


class _Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        return y + 1


def test_a_value_of_256_kib_of_tensors_is_one_message(monkeypatch):
    """Activations are mostly powers of two: a 256 KiB tensor and its header travel as one message
    (as a full chunk and a sliver, a busy reader paid a second hand-off for every value)."""
    import fxflow.distributed.wire as wire

    sizes = []

    class _Done:
        def wait(self) -> None:
            pass

    monkeypatch.setattr(wire.dist, "isend", lambda chunk, dst: sizes.append(chunk.numel()) or _Done())
    wire.Wire(0, {0: "cpu", 1: "cpu"}, cuda_backend=False).send((7, "getitem_12"), torch.randn(256, 256), 1)
    assert len(sizes) == 1 and sizes[0] > 256 * 1024
    sizes.clear()
    wire.Wire(0, {0: "cpu", 1: "cpu"}, cuda_backend=False).send((7, "big"), torch.randn(2, 256, 256), 1)
    assert len(sizes) == 2  # 512 KiB: each message holds 256 KiB and room besides


def test_values_larger_than_a_message_cross_in_chunks():
    model = _Scale()
    split = split_module(symbolic_trace(model), model, lambda node: 0 if node.name == "mul" else 1)
    x = torch.randn(3, 100_000)  # 1.2 MB: several chunks each way
    assert x.numel() * 4 > 4 * CHUNK_BYTES
    out, record = run_partitioned(split, {0: (1, "cpu"), 1: (2, "cpu")}, {"x": x}, measure=False)
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)
    assert [r["partitions"] for r in record["ranks"]] == [[], [0], [1]] and record["startup"]["total_s"] > 0

