"""Tracers: how a model (an nn.Module or a plain function) becomes a GraphModule."""

from __future__ import annotations

import ast
import inspect
import textwrap
from abc import ABC, abstractmethod
from types import FunctionType
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule
from torch.fx import Tracer as FxTracer

from fxflow.config.components import run_policy
from fxflow.config.targets import NotImported, TargetPolicy, TargetRefused
from fxflow.exported import drop_metadata_asserts, inline_disabled_regions, plain_signature, splits_to_slices
from fxflow.lazy_code import compiled_on_call
from fxflow.steps import RunStep


class Tracer(BaseModel, ABC):
    """Base for tracer components: `trace(root, inputs)` gives the GraphModule to transform."""

    model_config = ConfigDict(extra="forbid")

    # What a model must be for this tracer, and where else to turn: said when tracing fails.
    advice: ClassVar[str] = (
        "a model whose control flow does not depend on tensor values; otherwise pick tracer=meta (shape-dependent "
        "code), tracer=rewriting (assert statements), or set tracer.concrete_args / tracer.leaf_modules")

    def step(self) -> RunStep:
        """The trace step, worded by this tracer."""
        return RunStep("trace", "tracer._target_", f"the model cannot be traced by {type(self).__name__} (tracer._target_)",
                    self.advice, failed="")

    @abstractmethod
    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        """Trace `root`; `inputs` are the example inputs by argument name."""

    def facts(self) -> dict[str, Any]:
        """What the last `trace` recorded about how it traced (recorded under `trace`); none by default."""
        return {}

    def unused_settings(self, root: torch.nn.Module | Callable) -> list[tuple[str, str, str]]:
        """Settings that name nothing in this model, as (field, what is wrong, what is accepted).

        A setting that matches nothing changes nothing, so a recipe that relies on it would pass
        while testing something other than it says; the pipeline refuses such a run.
        """
        return []


def _graph_module(root: torch.nn.Module | Callable, tracer: FxTracer, graph: torch.fx.Graph) -> GraphModule:
    """Build on the tracer's own root: it owns the constants created while tracing
    (`_tensor_constant0`), also for plain functions and rewritten modules. Its forward is compiled
    when first called (`fxflow.lazy_code`): a big trace is often only read."""
    name = type(root).__name__ if isinstance(root, torch.nn.Module) else getattr(root, "__name__", "fn")
    return compiled_on_call(tracer.root, graph, name)


class SymbolicTracer(Tracer):
    """torch.fx symbolic tracing, with optional `concrete_args` and extra leaf module classes.

    `leaf_modules` lists dotted class paths (e.g. `torch.nn.Linear`, `mypkg.MyBlock`) whose
    instances stay single `call_module` nodes instead of being traced through.
    """

    concrete_args: dict[str, Any] | None = None
    leaf_modules: list[str] = []

    _leaf_classes: tuple[type, ...] = PrivateAttr(())  # resolved once, by the run's target policy

    @field_validator("leaf_modules")
    @classmethod
    def _classes_import(cls, value: list[str], info: ValidationInfo) -> list[str]:
        policy = run_policy(info)
        for path in value:
            try:
                policy.module_class(path)
            except NotImported:
                continue
            except TargetRefused as exc:
                raise PydanticCustomError(
                    "leaf_module", "'{path}' {why}; write a dotted path like torch.nn.Linear",
                    {"path": path, "why": exc.message}) from None
        return value

    @model_validator(mode="after")
    def _resolve_leaves(self, info: ValidationInfo) -> "SymbolicTracer":
        policy = run_policy(info) if self.leaf_modules else None
        try:
            self._leaf_classes = tuple(policy.module_class(p) for p in self.leaf_modules) if policy else ()
        except NotImported:  # fxflow show / validate: a trusted package's class is checked by name only
            self._leaf_classes = ()
        return self

    def _leaves(self) -> tuple[type, ...]:
        return self._leaf_classes

    def unused_settings(self, root: torch.nn.Module | Callable) -> list[tuple[str, str, str]]:
        found = []
        forward = root.forward if isinstance(root, torch.nn.Module) else root
        try:
            params = inspect.signature(forward).parameters
        except (TypeError, ValueError):
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            for name in self.concrete_args or {}:
                if name not in params:
                    found.append((f"concrete_args.{name}", "names no argument of the model's forward",
                                  ", ".join(params) or "no arguments"))
        if self.leaf_modules:
            present = {type(m) for m in root.modules()} if isinstance(root, torch.nn.Module) else set()
            for path, leaf in zip(self.leaf_modules, self._leaves()):
                if not any(issubclass(kind, leaf) for kind in present):
                    held = sorted({k.__name__ for k in present}) or ["none (a function)"]
                    found.append(("leaf_modules", f"{path} matches no module of the model", "classes it holds: "
                                  + ", ".join(held)))
        return found

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        leaves = self._leaves()
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
    modules (the torch test's FunctionalTracer in test_normalize_args, with BatchNorm2d the only leaf)."""

    def _is_leaf(self, module: torch.nn.Module, leaves: tuple[type, ...], default: bool) -> bool:
        return type(module) in leaves


class RewritingTracer(Tracer):
    """Python `assert` statements become traceable `torch._assert` calls (torch's AST rewrite).

    Modules, and functions whose name is not a global of their module (one defined inside
    another, as torch's tests define them) and that capture nothing from the enclosing function,
    go through torch's `RewritingTracer`. Other functions are rewritten by `rewrite_function`:
    torch's own path cannot trace a function whose name is already bound in its module (any
    module-level function, which is what a config's `_target_` names directly), and loses what a
    nested function captured (see there). The trace facts say which ran (`trace.rewriter`).
    """

    _rewriter: str | None = PrivateAttr(None)

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental.rewriter import RewritingTracer as TorchRewritingTracer

        if isinstance(root, torch.nn.Module) or _torch_can_rewrite(root):
            tracer: FxTracer = TorchRewritingTracer()
            graph = tracer.trace(root)
            self._rewriter = "torch.fx.experimental.rewriter.RewritingTracer"
        else:
            tracer = FxTracer()
            graph = tracer.trace(rewrite_function(root))
            self._rewriter = "fxflow.tracers.rewrite_function"
        return _graph_module(root, tracer, graph)

    def facts(self) -> dict[str, Any]:
        return {"rewriter": self._rewriter} if self._rewriter else {}


def _torch_can_rewrite(fn: Callable) -> bool:
    """torch's rewriter takes the one global its rewritten `def` adds, and the rewritten function
    sees only globals: a named function whose name is not yet a global where it was defined (a
    nested one) and that captures no variables of the enclosing function."""
    name = getattr(fn, "__name__", "<lambda>")
    code = getattr(fn, "__code__", None)
    return (name != "<lambda>" and name not in getattr(fn, "__globals__", {})
            and code is not None and not code.co_freevars)


def rewrite_function(fn: Callable) -> FunctionType:
    """`fn` with its `assert` statements turned into `torch._assert` calls, ready to trace.

        traced = torch.fx.symbolic_trace(rewrite_function(my_module.checked_fn))

    torch's `AST_Rewriter.rewrite` execs the rewritten source into a copy of `fn.__globals__`
    and takes the one key that appears; when `fn`'s name is already a global there (any
    module-level function), the definition only replaces that key and torch raises
    "Expected 1 new key, got 0". Here the rewritten definition is executed into a namespace
    of its own and picked out by name. Its globals are a copy of `fn`'s with `fn`'s closure
    variables added (so nested functions keep what they captured) and `torch` bound (the
    rewritten code calls `torch._assert`).
    """
    from torch._sources import normalize_source_lines
    from torch.fx.experimental.rewriter import AST_Rewriter

    if not isinstance(fn, FunctionType):
        raise TypeError(f"can only rewrite a Python function, got {type(fn).__name__}")
    if fn.__name__ == "<lambda>":
        return fn  # an expression holds no assert statement: nothing to rewrite
    lines, _ = inspect.getsourcelines(fn)
    tree = ast.parse(textwrap.dedent("".join(normalize_source_lines(lines))))
    defs = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(defs) != 1:
        raise TypeError(f"cannot rewrite {fn.__qualname__}: its source is not one `def` statement")
    rewritten = ast.fix_missing_locations(AST_Rewriter().visit(tree))
    scope = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}
    scope.setdefault("torch", torch)
    namespace: dict[str, Any] = {}
    exec(compile(rewritten, inspect.getsourcefile(fn) or "<rewritten>", "exec"), scope, namespace)  # noqa: S102
    return namespace[defs[0].name]


class MetaTracer(Tracer):
    """torch's meta tracer: `meta_args` are the declared tensor inputs moved to the meta device,
    so shape-dependent control flow can be traced."""

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        from torch.fx.experimental import meta_tracer

        meta_args = {k: v.to("meta") for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        concrete = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
        return meta_tracer.symbolic_trace(root, meta_args=meta_args, concrete_args=concrete or None)


class ExportTracer(Tracer):
    """`torch.export` (non-strict): the model runs once on the example inputs under torch's
    dispatcher and every ATen operator it calls becomes a node, whatever Python it took to get
    there. Pick it for models `symbolic_trace` cannot follow: Hugging Face transformers (masks
    built with vmap, decorated forwards), data-dependent Python that only reads shapes.

    The graph is `ExportedProgram.module()` made into one fxflow can size and split
    (`fxflow.exported`: inputs by name, the model's own output structure, every node one tensor;
    each step counted in the trace facts). Parameters and buffers are `get_attr` nodes, shapes
    are those of the example inputs (static), and it is exported without gradients (an inference
    graph, as every check runs it). `decompose` lowers to core ATen first (`run_decompositions`: fewer, simpler ops, but
    some return tuples, which sizing cannot place). `check_guards` keeps export's input check, a
    `_guards_fn` module call that returns nothing and so cannot be sized or partitioned: it is off
    by default, which is safe here because every check feeds inputs of the declared shapes. The
    trace facts record torch's version and both settings, since the graph is that release's ATen.
    """

    decompose: bool = False
    check_guards: bool = False

    advice: ClassVar[str] = (
        "an nn.Module whose forward runs on the example inputs; here every input must be a tensor, and "
        "torch.export fails on control flow that depends on tensor values: pick tracer=symbolic or tracer=meta there")

    _exported: dict[str, Any] = PrivateAttr(default_factory=dict)

    def trace(self, root: torch.nn.Module | Callable, inputs: dict[str, Any]) -> GraphModule:
        if not isinstance(root, torch.nn.Module):
            raise TypeError(f"torch.export traces an nn.Module, got {type(root).__name__}; "
                            "pick tracer=symbolic for a plain function")
        not_tensors = [name for name, value in inputs.items() if not isinstance(value, torch.Tensor)]
        if not_tensors:
            raise TypeError(f"torch.export is fed tensors only here; input(s) {', '.join(not_tensors)} are not "
                            "(model.inputs): pick tracer=symbolic with concrete_args for constant arguments")
        with torch.no_grad():  # an inference graph: fxflow's checks and partitions run without gradients
            program = torch.export.export(root, (), dict(inputs), strict=False)
            if self.decompose:
                program = program.run_decompositions()
        gm = plain_signature(program.module(check_guards=self.check_guards), list(inputs), type(root).__name__)
        inlined = inline_disabled_regions(gm)  # first: the regions' bodies hold asserts and splits too
        self._exported = {"exported_by": f"torch.export {torch.__version__}", "decomposed": self.decompose,
                          "guards_checked": self.check_guards, "regions_inlined": inlined,
                          "metadata_asserts_removed": drop_metadata_asserts(gm), "splits_sliced": splits_to_slices(gm)}
        return gm

    def facts(self) -> dict[str, Any]:
        return dict(self._exported)

