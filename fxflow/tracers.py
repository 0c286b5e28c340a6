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


def _graph_module(root: torch.nn.Module | Callable, tracer: FxTracer, graph: torch.fx.Graph) -> GraphModule:
    """Build on the tracer's own root: it owns the constants created while tracing
    (`_tensor_constant0`), also for plain functions and rewritten modules."""
    name = type(root).__name__ if isinstance(root, torch.nn.Module) else getattr(root, "__name__", "fn")
    return GraphModule(tracer.root, graph, name)


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
        is_leaf = self._is_leaf

        class _LeafTracer(FxTracer):
            def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
                return is_leaf(m, leaves, super().is_leaf_module(m, qualname))

        tracer = _LeafTracer()
        graph = tracer.trace(root, concrete_args=self.concrete_args)
        return _graph_module(root, tracer, graph)

    def _is_leaf(self, module: torch.nn.Module, leaves: tuple[type, ...], default: bool) -> bool:
        """Listed classes are leaves in addition to torch.fx's defaults (torch.nn's own modules)."""
        return isinstance(module, leaves) or default


class FunctionalTracer(SymbolicTracer):
    """Trace through every module, torch.nn's own included, except instances of exactly the
    `leaf_modules` classes: the graph then calls `torch.nn.functional` and builtin ops instead of
    modules (the seed's FunctionalTracer in test_normalize_args, with BatchNorm2d the only leaf)."""

    def _is_leaf(self, module: torch.nn.Module, leaves: tuple[type, ...], default: bool) -> bool:
        return type(module) in leaves


class RewritingTracer(Tracer):
    """torch's RewritingTracer: Python `assert` statements become traceable `torch._assert` calls."""

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental.rewriter import RewritingTracer as TorchRewritingTracer

        tracer = TorchRewritingTracer()
        graph = tracer.trace(root)
        return _graph_module(root, tracer, graph)


class MetaTracer(Tracer):
    """torch's meta tracer: `meta_args` are the declared tensor inputs moved to the meta device,
    so shape-dependent control flow can be traced."""

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental import meta_tracer

        meta_args = {k: v.to("meta") for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        concrete = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
        return meta_tracer.symbolic_trace(root, meta_args=meta_args, concrete_args=concrete or None)
