"""Probe operator argument normalization on torch's OpInfo database (`op_db`)."""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.utils._pytree as pytree
from pydantic import PositiveInt
from torch import fx
from torch.fx.operator_schemas import _torchscript_type_to_python_type, normalize_function

from fxflow.catalogue import CatalogueFacts, Tally, assert_same, select, testing_internal
from fxflow.progress import steps
from fxflow.transforms.base import StageContext, Transform

TEST = ("TestNormalizeOperators", "test_normalize_operator_exhaustive")  # how OpInfos address the torch test
# Ops whose FX half torch's test leaves out (they take a list of tensors).
FX_FAIL = {"cat", "stack", "hstack", "vstack", "dstack", "linalg.multi_dot", "_upsample_bilinear2d_aa", "_chunk_cat"}
RNG_SEED = 0  # every call of a comparison starts from this RNG state, so random ops compare too


class OpInfoCatalogueFacts(CatalogueFacts):
    """The tally, plus the failures OpInfo expects, the ops that passed against that expectation,
    and how many samples were checked."""

    expected_failures: int
    unexpected_passes: list[str]
    samples: int


class NormalizeOpInfoCatalogue(Transform):
    """For every OpInfo with a float32 CPU variant and each of its sample inputs: `normalize_function`
    must match the sample's arguments to the op's signature and the op must compute the same on
    the normalized arguments; then a graph calling `torch.<op name>` on the sample is normalized
    node by node with `Node.normalized_arguments` and must compute the same again
    (test_normalize_operator_exhaustive, float32 on CPU).

        - /transform@transforms.ops: normalize_opinfo_catalogue
        transforms.ops.limit=null transforms.ops.max_samples=null   # all ~680 ops (minutes)
        transforms.ops.include='[^add$, ^nn.functional.relu$]'

    As in torch's suite, an op the OpInfo marks for this test is skipped (`unittest.skip`,
    `onlyCUDA`) or expected to fail (`expectedFailure`); `torch.ops` overloads and ops without
    float32 on CPU are skipped; samples with complex arguments are left out. torch's test builds
    its module by generating source from the sample (`torch.<op>(arg_0, dim = 1)`) and tracing it;
    here the module takes the sample's tensors as one list and calls the op with the sample's
    structure, so no code is generated. The traced op calls are the same; some samples torch's
    generated source cannot express (two tensors in one keyword tuple get the same parameter
    name) work here, so an op expected to fail may pass: it is listed under `unexpected_passes`
    rather than counted as a pass or a failure.
    Needs `torch.testing._internal` (and `expecttest`); the run is skipped without them.

    A probe: the module is not changed. Facts: `database` (OpInfos in torch's `op_db`), `total`
    (those selected), `checked` (selected and not skipped: their samples ran), `passed`, `failed`,
    `skipped`, `expected_failures` (marked and failing), `unexpected_passes`, `samples` (sample
    inputs checked), `skip_reasons`, `failures`. A failed op fails the run in any scenario
    (fxflow.checks.probe_failures).
    """

    probe: ClassVar[bool] = True
    facts_model: ClassVar = OpInfoCatalogueFacts
    failures_fact: ClassVar[str] = "failed"

    limit: PositiveInt | None = None
    include: list[str] = []
    max_samples: PositiveInt | None = None

    def apply(self, gm: fx.GraphModule, ctx: StageContext) -> fx.GraphModule:
        ops = {_op_label(op): op for op in testing_internal("common_methods_invocations").op_db}
        tally, expected_failures, samples = Tally(), 0, 0
        unexpected_passes: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for label in steps(select(list(ops), self.include, self.limit), "OpInfo entries"):
                op = ops[label]
                skip, expect_failure = _marks(op)
                if skip:
                    tally.skips(label, skip)
                    continue
                try:
                    samples += _check_op(op, self.max_samples)
                except Exception as exc:  # noqa: BLE001 - each op's failure is a finding, not the probe's
                    if expect_failure:
                        expected_failures += 1
                    else:
                        tally.fails(label, f"{type(exc).__name__}: {exc}")
                else:
                    if expect_failure:
                        unexpected_passes.append(label)
                    else:
                        tally.passes(label)
        ctx.facts.update(tally.facts())
        ctx.facts["total"] += expected_failures + len(unexpected_passes)
        ctx.facts.update({"database": len(ops), "checked": ctx.facts["total"] - ctx.facts["skipped"],
                          "expected_failures": expected_failures, "unexpected_passes": unexpected_passes,
                          "samples": samples})
        return gm


def _op_label(op: Any) -> str:
    """The op's name, with its variant (`nn.functional.max_pool2d`, `norm.fro`): one torch test each."""
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def _marks(op: Any) -> tuple[str | None, bool]:
    """(skip reason or None, expected to fail) from the OpInfo's decorators for this test."""
    if torch.float32 not in op.supported_dtypes("cpu"):
        return "no float32 on CPU", False
    if isinstance(op.op, torch._ops.OpOverload):
        return "a torch.ops overload (torch's test skips these)", False
    expect_failure = False
    for info in op.decorators:
        if hasattr(info, "is_active"):  # a DecorateInfo: for the tests, devices and dtypes it names
            if not info.is_active(*TEST, "cpu", torch.float32, {}):
                continue
            decorators = info.decorators
        else:  # a plain decorator: for every test of the op
            decorators = [info]
        for decorator in decorators:
            if getattr(decorator, "__name__", "") == "onlyCUDA":
                return "only on CUDA", False
            marked = decorator(lambda: None)
            if getattr(marked, "__unittest_skip__", False):
                return "OpInfo skips this test", False
            expect_failure |= getattr(marked, "__unittest_expecting_failure__", False)
    return None, expect_failure


def _check_op(op: Any, max_samples: int | None) -> int:
    """Check every sample (up to `max_samples`); raise on the first failure; return how many ran."""
    checked = 0
    for sample in op.sample_inputs("cpu", torch.float32, requires_grad=False):
        if max_samples is not None and checked >= max_samples:
            break
        args, kwargs = [sample.input, *sample.args], dict(sample.kwargs)
        if any(isinstance(v, complex) for v in [*args, *kwargs.values()]):
            continue  # complex arguments are not supported by FX
        arg_types = [_type_of(v) for v in args]
        kwarg_types = {k: _type_of(v) for k, v in kwargs.items()}

        expected = _seeded(op.op, args, kwargs)
        normalized = normalize_function(op.op, args, kwargs, arg_types, kwarg_types)
        if normalized is None:
            raise AssertionError("normalize_function found no matching signature")
        assert_same(expected, _seeded(op.op, normalized.args, normalized.kwargs), "the op on normalized arguments")

        if op.name not in FX_FAIL:
            call = _CallOp(op.name, args, kwargs)
            traced, tensors = torch.fx.symbolic_trace(call), call.tensors
            expected = _seeded(traced, [tensors], {})
            for node in traced.graph.nodes:
                if node.op == "call_function" and node.target is not operator.getitem:
                    by_node = node.normalized_arguments(traced, tuple(arg_types), kwarg_types)
                    if not by_node:
                        raise AssertionError(f"Node.normalized_arguments found no signature for {node.target}")
                    node.args, node.kwargs = by_node.args, by_node.kwargs
            traced.recompile()
            assert_same(expected, _seeded(traced, [tensors], {}), "the graph on normalized arguments")
        checked += 1
    return checked


def _type_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return type(value)
    inferred = torch._C._jit_try_infer_type(value)
    if not inferred.success():
        raise AssertionError(f"TorchScript cannot infer the type of {value!r}")
    return _torchscript_type_to_python_type(inferred.type())


class _CallOp(torch.nn.Module):
    """`forward(tensors)` calls `torch.<name>` on the sample with its tensors taken from the list:
    what torch's test gets by generating `forward(self, arg_0, ...): return torch.<name>(arg_0, ...)`
    and tracing it, without generating code (the only extra nodes are the `getitem`s that take
    each tensor from the list; they are not the op under test)."""

    def __init__(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.target: Any = torch
        for part in name.split("."):
            self.target = getattr(self.target, part)
        self.tensors: list[torch.Tensor] = []

        def slot(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                self.tensors.append(value)
                return _Slot(len(self.tensors) - 1)
            return value

        self.sample_args = pytree.tree_map(slot, tuple(args))
        self.sample_kwargs = pytree.tree_map(slot, kwargs)

    def forward(self, tensors: list[torch.Tensor]) -> Any:
        def fill(value: Any) -> Any:
            return tensors[value.index] if isinstance(value, _Slot) else value

        return self.target(*pytree.tree_map(fill, self.sample_args), **pytree.tree_map(fill, self.sample_kwargs))


@dataclass(frozen=True)
class _Slot:
    index: int


def _seeded(fn: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RNG_SEED)
        return fn(*args, **kwargs)

