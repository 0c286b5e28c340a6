"""GraphModules whose forward is compiled when first called, not when built.

`GraphModule(root, graph)` generates the forward's source and compiles it at once. For a
100,000-node trace that compile alone takes seconds, and such a trace is often only read
(sized, partitioned, written to the record) and never run. A `CompiledOnCall` module gives
its code text when asked (the record shows it) and compiles on its first call; steps that
hand the module to torch's own tools (scripting, re-tracing, pickling) get it compiled first
(`compile_now`, called by `Transform.run` unless the step only reads the graph).

    gm = compiled_on_call(tracer.root, graph, "MyModel")
    gm.code          # the source, generated once and kept until the graph is recompiled
    gm(x)            # compiles, then runs
"""

from __future__ import annotations

from typing import Any

import torch
from torch.fx import GraphModule
from torch.fx._lazy_graph_module import _LazyGraphModule
from torch.fx.graph import PythonCode
from torch.fx.experimental import _config as fx_experimental_config


class CompiledOnCall(_LazyGraphModule):
    """torch's lazily compiled GraphModule whose `code` does not compile: the code is generated
    (once per recompile) without building the forward from it, and the first call compiles that
    same generated code instead of generating it again (a 100,000-node graph's code takes a second
    to generate)."""

    _pending: PythonCode | None = None
    _pending_record_func: bool = False  # the profiler setting the kept code was generated under
    # torch.jit.script compiles a module's properties unless told otherwise; `code` is Python-only
    __jit_unused_properties__ = [*GraphModule.__jit_unused_properties__, "code"]

    @classmethod
    def recompile(cls) -> None:  # type: ignore[override] - torch's lazy recompile is a classmethod too
        """Mark the forward for compiling on the next call, and drop the kept code (the graph changed)."""
        super().recompile()
        cls._pending = None

    @property
    def code(self) -> str:
        """The forward's source; generated without compiling it while the module has not run."""
        if not self._needs_recompile():
            return super().code
        return self._generated().src

    def _generated(self) -> PythonCode:
        cls = type(self)  # each GraphModule has a class of its own: what is kept there is this module's
        record_func = bool(fx_experimental_config.enrich_profiler_metadata)
        if cls._pending is None or cls._pending_record_func != record_func:
            cls._pending = self._graph.python_code(root_module="self", record_func=record_func)
            cls._pending_record_func = record_func
        return cls._pending

    def _real_recompile(self) -> PythonCode:
        """torch's compile, handed the code `code` already generated (when it did) instead of
        generating it again; torch's own recompile does everything else."""
        kept = type(self)._pending
        if kept is None or type(self)._pending_record_func != bool(fx_experimental_config.enrich_profiler_metadata):
            return super()._real_recompile()
        self._graph.python_code = lambda *args, **kwargs: kept  # type: ignore[method-assign]
        try:
            return super()._real_recompile()
        finally:
            del self._graph.python_code
            type(self)._pending = None


def compiled_on_call(root: torch.nn.Module | dict[str, Any], graph: torch.fx.Graph, name: str) -> GraphModule:
    """`GraphModule(root, graph, name)`, compiled when first called."""
    return CompiledOnCall(root, graph, name)


def compile_now(module: Any) -> None:
    """Compile a lazily compiled module's forward now (torch's tools read it); others are left as they are."""
    if isinstance(module, _LazyGraphModule):
        module.real_recompile()
