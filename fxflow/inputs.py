"""Example inputs from their declarations, drawn from a private generator so that every run of a
config sees the same values and drawing them never disturbs the global RNG the model uses."""

from __future__ import annotations

from typing import Any

import torch

from fxflow.config.schema import InputSpec


def make_inputs(specs: dict[str, InputSpec], seed: int) -> dict[str, Any]:
    """One input set, by argument name in declaration order."""
    gen = torch.Generator().manual_seed(seed)
    return {name: make_input(spec, gen) for name, spec in specs.items()}


def make_input(spec: InputSpec, gen: torch.Generator) -> Any:
    if spec.shape is None:
        return spec.value
    dtype = getattr(torch, spec.dtype)
    shape = tuple(spec.shape)
    if spec.dist == "zeros":
        return torch.zeros(shape, dtype=dtype)
    if spec.dist == "ones":
        return torch.ones(shape, dtype=dtype)
    if spec.dist == "randint":
        return torch.randint(spec.low, spec.high, shape, generator=gen, dtype=dtype)
    draw = torch.rand if spec.dist == "rand" else torch.randn
    return draw(shape, generator=gen, dtype=torch.float32).to(dtype)


def input_sets(specs: dict[str, InputSpec], seed: int, fresh: int) -> list[dict[str, Any]]:
    """The declared example inputs (set 0) plus `fresh` new seeded sets."""
    return [make_inputs(specs, seed + k) for k in range(fresh + 1)]
