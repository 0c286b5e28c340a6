"""Models shaped like deployed ones, built from code with random weights: traced exactly, and
partitioned by fxflow with equivalence and a proven gap (recipes/partition_gpt.yaml)."""

from __future__ import annotations

import pytest
import torch
from torch.fx import symbolic_trace

from fxflow.models.gpt import MiniGPT


@pytest.mark.parametrize("layers, heads", [(1, 1), (3, 4)])
def test_mini_gpt_traces_to_the_same_logits(layers, heads):
    torch.manual_seed(0)
    model = MiniGPT(vocab=64, context=8, dim=16, heads=heads, layers=layers).eval()
    tokens = torch.randint(0, 64, (3, 8))
    gm = symbolic_trace(model)
    assert torch.equal(gm(tokens), model(tokens))
    assert sum(n.op == "call_module" and n.target.endswith("attn.qkv") for n in gm.graph.nodes) == layers
    # causal: changing the last token leaves every earlier position's logits as they were
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 64
    assert torch.equal(gm(changed)[:, :-1], gm(tokens)[:, :-1])


def test_mini_gpt_refuses_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of heads"):
        MiniGPT(dim=30, heads=4)


def test_a_deeper_gpt_over_more_devices_is_partitioned_equivalently(run_recipe):
    run = run_recipe("partition_gpt", "model.module.layers=8", "+devices.dev_4={mem_bytes: 400kB, logical_id: 4}")
    m = run.metrics
    assert run.summary["status"] == "passed", run.summary.get("error")
    assert run.check("equivalence.partition")["passed"]
    assert m["partition.num_partitions"] >= 5 and m["partition.idle_devices"] == []
    assert 0 <= m["partition.gap"] <= 0.01
