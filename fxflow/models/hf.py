"""Hugging Face `transformers` models built from plain numbers, with random weights.

A config names one of these factories and its sizes; it never names a transformers class, so
nothing a recipe writes can reach `from_pretrained`, the hub or a file: the factory builds the
model's config object from the numbers given and the model from that config, all in memory.
The defaults are the published base sizes (GPT-2 small, BERT-base); tests pass small ones.

    gpt2(layers=2, hidden=32, heads=4, vocab=128, context=32)      # GPT2LMHeadModel -> logits
    bert(layers=2, hidden=32, heads=4, intermediate=64, vocab=128)  # BertModel -> (hidden states, pooled)
    llama(layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64, vocab=128)  # LlamaForCausalLM

Each is wrapped (`TensorOutputs`) so `forward(input_ids)` returns tensors, not transformers'
`ModelOutput` (a graph's output must be a tensor or a tuple of them to be split and compared), with
the key-value cache off (a forward pass over a whole sequence; a cache object is not a tensor) and
the decoders' causal mask built by the wrapper (see there).
`symbolic_trace` cannot follow these models under torch 2.13 (GPT-2 and Llama build their
attention masks with vmap and decorated forwards); trace them with `tracer=export`.
Needs `pip install 'fxflow[hf]'`; without transformers the build raises RequirementMissing, so
a run is skipped (the model configs also say `requires.packages: [transformers]`).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

import torch
from torch import nn

from fxflow.config.targets import model_factory
from fxflow.requirements import RequirementMissing

Attention = Literal["sdpa", "eager"]


class TensorOutputs(nn.Module):
    """A transformers model whose forward returns the named fields of its output as tensors:
    one field alone, several as a tuple in the order given.

    A decoder (`causal`) is handed its causal mask as a 4D additive mask (0 where a position may
    attend, the dtype's lowest value where not), the form transformers takes as given: its own mask
    builder runs `torch.vmap` over index functions, which leaves functorch bookkeeping calls (no
    tensor out) in an exported graph that sizing cannot place. The logits are those of the model
    called without a mask (tests/test_real_models.py compares the two).
    """

    def __init__(self, model: nn.Module, fields: tuple[str, ...], causal: bool):
        super().__init__()
        self.model = model
        self.fields = fields
        self.causal = causal

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        mask = self._causal_mask(input_ids.shape[-1]) if self.causal else None
        out = self.model(input_ids=input_ids, attention_mask=mask, return_dict=True)
        values = tuple(out[name] for name in self.fields)
        return values[0] if len(values) == 1 else values

    def _causal_mask(self, length: int) -> torch.Tensor:
        dtype = self.model.get_input_embeddings().weight.dtype
        allowed = torch.ones(length, length, dtype=torch.bool).tril()
        return torch.zeros(1, 1, length, length, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def _transformers(name: str) -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise RequirementMissing(f"transformers is not installed (needed for {name}): pip install 'fxflow[hf]'") from exc


@model_factory
def gpt2(layers: int = 12, hidden: int = 768, heads: int = 12, vocab: int = 50257, context: int = 1024,
         attention: Attention = "sdpa") -> nn.Module:
    """GPT-2 (`GPT2LMHeadModel`, defaults: GPT-2 small, 124M parameters): input_ids -> logits."""
    hf = _transformers("gpt2")
    config = hf.GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads, vocab_size=vocab, n_positions=context,
                           use_cache=False, attn_implementation=attention)
    return TensorOutputs(hf.GPT2LMHeadModel(config).eval(), ("logits",), causal=True)


@model_factory
def bert(layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072, vocab: int = 30522,
         context: int = 512, attention: Attention = "sdpa") -> nn.Module:
    """BERT (`BertModel`, defaults: BERT-base, 110M parameters): input_ids -> (last hidden state, pooled)."""
    hf = _transformers("bert")
    config = hf.BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                           intermediate_size=intermediate, vocab_size=vocab, max_position_embeddings=context,
                           attn_implementation=attention)
    return TensorOutputs(hf.BertModel(config).eval(), ("last_hidden_state", "pooler_output"), causal=False)


@model_factory
def llama(layers: int = 16, hidden: int = 2048, heads: int = 32, kv_heads: int = 8, intermediate: int = 8192,
          vocab: int = 128256, context: int = 2048, attention: Attention = "sdpa") -> nn.Module:
    """A Llama-style decoder (`LlamaForCausalLM`: RMSNorm, rotary positions, grouped-query attention,
    SwiGLU; defaults: Llama 3.2 1B's shape, 1.2B parameters): input_ids -> logits."""
    hf = _transformers("llama")
    config = hf.LlamaConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                            num_key_value_heads=kv_heads, intermediate_size=intermediate, vocab_size=vocab,
                            max_position_embeddings=context, use_cache=False, attn_implementation=attention)
    return TensorOutputs(hf.LlamaForCausalLM(config).eval(), ("logits",), causal=True)
