"""Models of the torch tests on tracing: assert rewriting, tracing a plain function, the meta
tracer. Each docstring names the test of test_fx_experimental.py it comes from."""

from __future__ import annotations

import torch
from torch import nn


class AssertNoMessage(nn.Module):
    """`assert a == b` without a message, then a + b (test_call_to_assert_no_msg)."""

    def forward(self, a, b):
        assert a == b
        return a + b


class AssertWithMessage(nn.Module):
    """`assert a == b, "test message"` (test_call_to_assert_with_msg)."""

    def forward(self, a, b):
        assert a == b, "test message"
        return a + b


class AssertWithEmptyMessage(nn.Module):
    """`assert a == b, ""` (test_call_to_assert_with_empty_msg)."""

    def forward(self, a, b):
        assert a == b, ""
        return a + b


class AssertWithMultilineMessage(nn.Module):
    """An assert whose message spans lines with odd spacing (test_call_to_assert_with_multiline_message)."""

    def forward(self, a, b):
        error_msg = """
An error message with
terrible spacing
                """
        assert a == b, error_msg
        return a + b


def foo(x):
    """relu(x), traced as a plain function (test_traceable_function_with_nonstandard_name).

    A module-level function: its name is already bound in this module's globals, which is what
    torch's own RewritingTracer cannot handle ("Expected 1 new key, got 0")."""
    return torch.relu(x)


class MetaTracerTestModule(nn.Module):
    """Embedding, a position offset and LayerNorm, then relu for fewer than 30 rows and sigmoid
    otherwise: control flow on a shape, which only the meta tracer can follow (test_meta_tracer)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(num_embeddings=42, embedding_dim=16)
        self.layernorm = nn.LayerNorm(16)

    def forward(self, x):
        emb = self.emb(x)
        emb = emb + torch.arange(emb.shape[-1], dtype=torch.float, device=emb.device)
        lol = self.layernorm(emb)
        return torch.relu(lol) if lol.shape[0] < 30 else torch.sigmoid(lol)
