"""Probe argument normalization on torch's own catalogue of torch.nn module cases."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from pydantic import PositiveInt
from torch import fx, nn
from torch.fx.experimental.normalize import NormalizeArgs
from torch.fx.operator_schemas import normalize_module

from fxflow.catalogue import CatalogueFacts, Tally, assert_same, select, testing_internal
from fxflow.progress import steps
from fxflow.transforms.base import StageContext, Transform

RNG_SEED = 0  # both sides of an output comparison start from this RNG state (RReLU, FractionalMaxPool draw)


class NormalizeModulesCatalogue(Transform):
    """For every case of torch's nn module test list (`common_nn.module_tests` and
    `get_new_module_tests()`): build the module, wrap it in a one-call GraphModule, check that
    `Node.normalized_arguments` and `normalize_module` agree and are not empty, run the module on
    its normalized keyword arguments against the module itself, then check that `NormalizeArgs`
    leaves the call without positional arguments (test_normalize_modules_exhaustive).

        - /transform@transforms.modules: normalize_modules_catalogue
        transforms.modules.limit=null            # the whole list (~230 cases, a few seconds)
        transforms.modules.include='[Conv, Pool]'

    Where the torch test skips the output comparison for modules that draw random numbers
    (RReLU, FractionalMaxPool), both calls here start from the same RNG state and are compared.
    Cases whose module is not a torch.nn class are skipped, as in torch's test. Needs
    `torch.testing._internal` (and its dependency `expecttest`); the run is skipped without them.

    A probe: the module is not changed. Facts: `total`, `passed`, `failed`, `skipped`,
    `skip_reasons` (reason -> count), `failures` (the first few, with their reason). A failed
    case fails the run in any scenario (fxflow.checks.probe_failures).
    """

    probe: ClassVar[bool] = True
    facts_model: ClassVar = CatalogueFacts
    failures_fact: ClassVar[str] = "failed"

    limit: PositiveInt | None = None
    include: list[str] = []

    def apply(self, gm: fx.GraphModule, ctx: StageContext) -> fx.GraphModule:
        common_nn = testing_internal("common_nn")
        cases = {_case_name(c): c for c in common_nn.module_tests + common_nn.get_new_module_tests()}
        tally = Tally()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # modules warn about their settings (padding='same', nested tensors)
            for name in steps(select(list(cases), self.include, self.limit), "nn modules"):
                try:
                    skip = _check_case(cases[name])
                except Exception as exc:  # noqa: BLE001 - each case's failure is a finding, not the probe's
                    tally.fails(name, f"{type(exc).__name__}: {exc}")
                    continue
                tally.skips(name, skip) if skip else tally.passes(name)
        ctx.facts.update(tally.facts())
        return gm


def _case_name(case: dict[str, Any]) -> str:
    if "fullname" in case:
        return case["fullname"]
    return case["module_name"] + (f"_{case['desc']}" if case.get("desc") else "")


def _check_case(case: dict[str, Any]) -> str | None:
    """Run one case; return a skip reason, raise on a failure, None when it passes."""
    constructor = case.get("constructor") or getattr(nn, case["module_name"])
    mod = constructor(*case.get("constructor_args", ()))
    if type(mod).__name__ not in dir(nn):
        return "not a torch.nn class"
    inputs = case["input_fn"]() if "input_fn" in case else torch.randn(case["input_size"])
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not fx.Tracer().is_leaf_module(mod, "mod"):
        return "traced through, not a single module call"

    traced = _one_call(mod, len(inputs))
    modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if node.op == "call_module" and _is_torch_nn(modules[node.target]):
            normalized = node.normalized_arguments(traced)
            by_module = normalize_module(traced, node.target, node.args, node.kwargs)
            if not normalized or normalized != by_module:
                raise AssertionError(f"normalized_arguments gave {normalized}, normalize_module gave {by_module}")
            node.args, node.kwargs = normalized.args, normalized.kwargs
    traced.recompile()
    expected, actual = (_seeded(fn, inputs) for fn in (mod, traced))
    assert_same(expected, actual, "the call on normalized arguments")

    normalized_gm = NormalizeArgs(_one_call(mod, len(inputs))).transform()
    modules = dict(normalized_gm.named_modules())
    for node in normalized_gm.graph.nodes:
        if node.op == "call_module" and _is_torch_nn(modules[node.target]) and node.args:
            raise AssertionError(f"NormalizeArgs left positional arguments on {node.target}: {node.args}")
    return None


def _one_call(mod: nn.Module, arity: int) -> fx.GraphModule:
    """The graph torch's test gets by tracing `forward(self, v0, ...): return self.mod(v0, ...)`."""
    root = nn.Module()
    root.mod = mod
    graph = fx.Graph()
    args = tuple(graph.placeholder(f"v{i}") for i in range(arity))
    graph.output(graph.call_module("mod", args))
    return fx.GraphModule(root, graph)


def _is_torch_nn(module: nn.Module) -> bool:
    return getattr(nn, type(module).__name__, None) is type(module)


def _seeded(fn: Any, inputs: tuple[Any, ...]) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RNG_SEED)
        return fn(*inputs)
