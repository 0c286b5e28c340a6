"""Tracers: how a model (an nn.Module or a plain function) becomes a GraphModule."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from hydra.utils import get_class
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx import Tracer as FxTracer


class Tracer(BaseModel, ABC):
    """Base for tracer components: `trace(root, inputs)` gives the GraphModule to transform."""

    model_config = ConfigDict(extra="forbid")

    @abstractmethod
    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        """Trace `root`; `inputs` are the example inputs by argument name."""


def _owner(root: torch.nn.Module | Callable) -> torch.nn.Module:
    """The module a GraphModule takes its attributes from (an empty one for a function)."""
    return root if isinstance(root, torch.nn.Module) else torch.nn.Module()


def _graph_module(root: torch.nn.Module | Callable, graph: torch.fx.Graph) -> GraphModule:
    name = type(root).__name__ if isinstance(root, torch.nn.Module) else getattr(root, "__name__", "fn")
    return GraphModule(_owner(root), graph, name)


class SymbolicTracer(Tracer):
    """torch.fx symbolic tracing, with optional `concrete_args` and extra leaf module classes.

    `leaf_modules` lists dotted class paths (e.g. `torch.nn.Linear`, `mypkg.MyBlock`) whose
    instances stay single `call_module` nodes instead of being traced through.
    """

    concrete_args: dict[str, Any] | None = None
    leaf_modules: list[str] = []

    @field_validator("leaf_modules")
    @classmethod
    def _classes_import(cls, value: list[str]) -> list[str]:
        for path in value:
            try:
                klass = get_class(path)
            except Exception:
                raise PydanticCustomError(
                    "leaf_module", "cannot import class '{path}'; write a dotted path like torch.nn.Linear", {"path": path}
                ) from None
            if not issubclass(klass, torch.nn.Module):
                raise PydanticCustomError("leaf_module", "'{path}' is not an nn.Module class", {"path": path})
        return value

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        leaves = tuple(get_class(p) for p in self.leaf_modules)

        class _LeafTracer(FxTracer):
            def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
                return isinstance(m, leaves) or super().is_leaf_module(m, qualname)

        graph = _LeafTracer().trace(root, concrete_args=self.concrete_args)
        return _graph_module(root, graph)


class RewritingTracer(Tracer):
    """torch's RewritingTracer: Python `assert` statements become traceable `torch._assert` calls."""

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental.rewriter import RewritingTracer as TorchRewritingTracer

        return _graph_module(root, TorchRewritingTracer().trace(root))


class MetaTracer(Tracer):
    """torch's meta tracer: `meta_args` are the declared tensor inputs moved to the meta device,
    so shape-dependent control flow can be traced."""

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental import meta_tracer

        meta_args = {k: v.to("meta") for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        concrete = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
        return meta_tracer.symbolic_trace(root, meta_args=meta_args, concrete_args=concrete or None)
