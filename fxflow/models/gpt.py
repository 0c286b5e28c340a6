"""A GPT-2-shaped language model built from code with random weights: token and position
embeddings, pre-norm blocks of multi-head causal self-attention and a GELU MLP, a final norm and
the language-model head. The layout follows GPT-2 (fused query/key/value projection, 4x MLP,
causal mask as a buffer); sizes are small so tests run it in milliseconds, and `layers` scales it.

    model = MiniGPT(vocab=128, context=16, dim=32, heads=4, layers=6)
    logits = model(tokens)          # tokens: int64 [batch, context] -> [batch, context, vocab]

Every shape is fixed by the constructor, so `symbolic_trace` follows it without concrete
arguments (about 30 graph nodes per block).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    """Multi-head attention over the positions up to each one (GPT-2's `attn`)."""

    def __init__(self, context: int, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.context, self.dim, self.heads, self.head_dim = context, dim, heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)).view(1, 1, context, context))
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)  # sliced, not split: every node yields one tensor, so every node can be sized
        q, k, v = (self._heads(qkv[:, :, i * self.dim : (i + 1) * self.dim]) for i in range(3))
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        scores = scores.masked_fill(~self.mask, float("-inf"))
        out = torch.matmul(F.softmax(scores, dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(-1, self.context, self.dim))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, self.context, self.heads, self.head_dim).transpose(1, 2)


class GPTBlock(nn.Module):
    def __init__(self, context: int, dim: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(context, dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class MiniGPT(nn.Module):
    """forward(tokens int64 [batch, context]) -> logits [batch, context, vocab]."""

    def __init__(self, vocab: int = 128, context: int = 16, dim: int = 32, heads: int = 4, layers: int = 6):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(context, dim)
        self.register_buffer("positions", torch.arange(context).unsqueeze(0))
        self.blocks = nn.Sequential(*[GPTBlock(context, dim, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe(self.positions)
        return self.lm_head(self.ln_f(self.blocks(x)))
