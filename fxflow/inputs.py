"""Example inputs from their declarations, drawn from a private generator so that every run of a
config sees the same values and drawing them never disturbs the global RNG the model uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fxflow.config.schema import InputSpec
from fxflow.config.targets import TargetPolicy


@dataclass
class InputSet(Mapping[str, Any]):
    """One set of example inputs: a mapping of argument name to value, in declaration order.

    Inputs are passed positionally in that order, except those declared `keyword: true`, which
    are passed by name (a `forward(self, x, **kwargs)` fed `foo=`).
    """

    by_name: dict[str, Any]
    keyword: frozenset[str] = field(default_factory=frozenset)

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(v for k, v in self.by_name.items() if k not in self.keyword)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.by_name.items() if k in self.keyword}

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **self.kwargs)


def make_inputs(specs: dict[str, InputSpec], seed: int, policy: TargetPolicy | None = None) -> InputSet:
    """One input set, drawn from a generator seeded with `seed`; an input built from a class is
    resolved by `policy` (a run passes its own; the environment's otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    values = {name: make_input(spec, gen, policy) for name, spec in specs.items()}
    return InputSet(values, frozenset(name for name, spec in specs.items() if spec.keyword))


def make_input(spec: InputSpec, gen: torch.Generator, policy: TargetPolicy | None = None) -> Any:
    """One value from its declaration; nested items and object fields draw from the same generator."""
    if spec.items is not None:
        items = [make_input(item, gen, policy) for item in spec.items]
        return tuple(items) if spec.container == "tuple" else items
    if spec.object is not None:
        fields = {name: make_input(field, gen, policy) for name, field in spec.object.items() if name != "_target_"}
        return (policy or TargetPolicy.from_environment()).data_class(spec.object["_target_"])(**fields)
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


def input_sets(specs: dict[str, InputSpec], seed: int, fresh: int, policy: TargetPolicy | None = None) -> list[InputSet]:
    """The declared example inputs (set 0) plus `fresh` new seeded sets."""
    return [make_inputs(specs, seed + k, policy) for k in range(fresh + 1)]
