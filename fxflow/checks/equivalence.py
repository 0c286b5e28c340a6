"""Does a stage's module compute what the reference computes, on real inputs?

Some models draw random numbers inside `forward` (`torch.rand(4)`). Symbolic tracing runs
those calls once and freezes their values into the graph, so a fresh eager call computes
something else. With `replay_rng` (the default) the global RNG is reset to the state used
at trace time before *every* call, of the reference and of the stage alike: the eager
model then draws exactly the values the trace froze, and stochastic modules that draw at
run time see the same stream on both sides. Inputs come from their own generator, so
drawing them never disturbs that state. The record says which reference each check used.

NaN and inf never make two outputs equal by accident: their positions must agree and the finite
values must be within tolerance, and a reference output with no finite value at all (every
element NaN or inf) proves nothing about the stage, so it stops the run as an error
(`ReferenceNotFinite`) instead of passing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.utils._pytree as pytree

from fxflow.checks.result import Check
from fxflow.config.schema import Tolerance
from fxflow.inputs import InputSet


class CallFailed(Exception):
    """The reference or the stage raised when called on an input set (not a difference: a crash)."""

    def __init__(self, side: str, input_set: int, cause: BaseException):
        super().__init__(f"the {side} raised on input set {input_set}: {type(cause).__name__}: {cause}")
        self.side = side  # "reference" or "stage"
        self.input_set = input_set
        self.cause = cause


class ReferenceNotFinite(Exception):
    """The reference's output on an input set has no finite value: comparing with it proves nothing."""

    def __init__(self, input_set: int, where: str):
        super().__init__(f"the reference is not finite; pick other inputs (model.inputs): on input set {input_set} "
                         f"{where} is all NaN or inf, which any stage that also returns NaN or inf would match")
        self.input_set = input_set
        self.where = where


@dataclass
class Reference:
    """What a stage is compared with, and the words the record uses for it.

    `output` computes the reference's output on an input set once per run and keeps a copy: every
    stage is compared with the same figures (a stage sharing the model's tensors cannot change them
    by writing in place), and a large model's eager forward is paid once, not once per stage."""

    fn: Callable[..., Any]
    label: str
    _outputs: dict[tuple[int, int | None], tuple[InputSet, Any]] = field(default_factory=dict, repr=False)

    def output(self, inputs: InputSet, rng_seed: int | None) -> Any:
        """The reference's output on `inputs` (RNG replayed from `rng_seed`), computed on first use."""
        key = (id(inputs), rng_seed)
        kept = self._outputs.get(key)
        if kept is None or kept[0] is not inputs:
            kept = self._outputs[key] = (inputs, _copied(call_replayed(self.fn, inputs, rng_seed)))
        return kept[1]


def _copied(value: Any) -> Any:
    """`value` with every tensor cloned: a kept output no later call can write into."""
    return pytree.tree_map(lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) else leaf, value)


def call_replayed(fn: Callable[..., Any], inputs: InputSet, rng_seed: int | None) -> Any:
    """Call `fn` on the inputs with the global RNG set to `rng_seed`, restoring it after."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if rng_seed is not None:
            torch.manual_seed(rng_seed)
        return inputs.call(fn)


def compare_outputs(expected: Any, actual: Any, tolerances: dict[str, Tolerance]) -> tuple[bool, str, float]:
    """Compare nested outputs leaf by leaf; returns (passed, detail in words, largest abs difference).

    NaN and inf must sit at the same positions with the same sign; the largest difference is
    taken over the positions where both are finite. A reference leaf with no finite value never
    passes (check_equivalence stops the run on it before comparing)."""
    exp_leaves, exp_spec = pytree.tree_flatten(_sorted_keys(expected))
    act_leaves, act_spec = pytree.tree_flatten(_sorted_keys(actual))
    if exp_spec != act_spec:
        return False, f"the outputs differ in structure: expected {exp_spec}, got {act_spec}", float("nan")
    worst = 0.0
    for index, (e, a) in enumerate(zip(exp_leaves, act_leaves)):
        where = f"output {index}" if len(exp_leaves) > 1 else "the output"
        if _not_finite(e):
            return False, f"{where}: the reference is not finite (all NaN or inf)", worst
        if isinstance(e, torch.Tensor) and isinstance(a, torch.Tensor):
            if e.shape != a.shape or e.dtype != a.dtype:
                return False, f"{where}: expected {e.dtype}{list(e.shape)}, got {a.dtype}{list(a.shape)}", float("nan")
            placed = _non_finite_mismatch(e, a)
            if placed:
                return False, f"{where}: {placed}", worst
            both = torch.isfinite(e) & torch.isfinite(a) if _float_like(e) else None
            if e.numel() and (both is None or bool(both.any())):
                diff = (e.double() - a.double()).abs() if not e.is_complex() else (e - a).abs().double()
                worst = max(worst, (diff if both is None else diff[both]).max().item())
            tol = tolerances.get(str(e.dtype).removeprefix("torch."))
            try:
                torch.testing.assert_close(a, e, rtol=tol.rtol if tol else None, atol=tol.atol if tol else None, equal_nan=True)
            except AssertionError as exc:
                return False, f"{where}: " + " ".join(str(exc).split())[:300], worst
        elif isinstance(e, torch.Tensor) or isinstance(a, torch.Tensor):
            return False, f"{where}: expected {type(e).__name__}, got {type(a).__name__}", worst
        elif e != a:
            return False, f"{where}: expected {e!r}, got {a!r}", worst
    count = len(exp_leaves)
    return True, "the output matches" if count == 1 else f"all {count} outputs match", worst


def _not_finite(value: Any) -> bool:
    """A float or floating/complex tensor with elements, none of them finite."""
    if isinstance(value, torch.Tensor):
        return _float_like(value) and value.numel() > 0 and not bool(torch.isfinite(value).any())
    return isinstance(value, (float, complex)) and not math.isfinite(abs(value))


def _float_like(t: torch.Tensor) -> bool:
    """A dense floating or complex tensor: the kind that can hold NaN and inf."""
    return (t.is_floating_point() or t.is_complex()) and t.layout == torch.strided


def non_finite_output(output: Any) -> str | None:
    """Which leaf of an output has no finite value ("the output", "output 2"), or None."""
    leaves = pytree.tree_leaves(_sorted_keys(output))
    for index, leaf in enumerate(leaves):
        if _not_finite(leaf):
            return f"output {index}" if len(leaves) > 1 else "the output"
    return None


def _non_finite_mismatch(expected: torch.Tensor, actual: torch.Tensor) -> str:
    """Where NaN, +inf or -inf differ between the two (empty when they agree)."""
    if not _float_like(expected):
        return ""
    kinds = (("NaN", torch.isnan), ("+inf", lambda t: torch.isposinf(t.real) if t.is_complex() else torch.isposinf(t)),
             ("-inf", lambda t: torch.isneginf(t.real) if t.is_complex() else torch.isneginf(t)))
    for label, test in kinds:
        want, got = test(expected), test(actual)
        differ = want != got
        if bool(differ.any()):
            first = tuple(int(i) for i in differ.nonzero()[0].tolist())
            return (f"{label} positions differ: the reference has {int(want.sum())}, the stage {int(got.sum())} "
                    f"({int(differ.sum())} positions disagree, the first at index {first})")
    return ""


def _sorted_keys(value: Any) -> Any:
    """Dicts compare by content, not insertion order."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=repr)}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_sorted_keys(v) for v in value)
    return value


def check_equivalence(
    stage: str,
    module: Callable[..., Any],
    reference: Reference,
    input_sets: list[InputSet],
    rng_seed: int | None,
    tolerances: dict[str, Tolerance],
) -> Check:
    """Run module and reference on every input set; stop at the first set that differs.

    Raises ReferenceNotFinite when the reference's output on a set has a leaf with no finite value."""
    worst = 0.0
    detail = "no input sets"
    for index, inputs in enumerate(input_sets):
        try:
            expected = reference.output(inputs, rng_seed)
        except Exception as exc:  # noqa: BLE001 - reported as a failed call, never as a difference
            raise CallFailed("reference", index, exc) from exc
        where = non_finite_output(expected)
        if where is not None:
            raise ReferenceNotFinite(index, where)
        try:
            actual = call_replayed(module, inputs, rng_seed)
        except Exception as exc:  # noqa: BLE001
            raise CallFailed("stage", index, exc) from exc
        ok, detail, diff = compare_outputs(expected, actual, tolerances)
        worst = max(worst, diff) if diff == diff else worst
        if not ok:
            return _check(stage, reference, False, index + 1, len(input_sets), worst, f"input set {index}: {detail}", rng_seed)
    return _check(stage, reference, bool(input_sets), len(input_sets), len(input_sets), worst, detail, rng_seed)


def _check(stage: str, ref: Reference, passed: bool, ran: int, total: int, worst: float, detail: str,
           rng_seed: int | None) -> Check:
    return Check(
        name=f"equivalence.{stage}", kind="equivalence", passed=passed, detail=detail, stage=stage,
        reference=ref.label,
        extra={"rng_replayed": rng_seed is not None, "input_sets": f"{ran}/{total}", "max_abs_diff": worst},
    )
