"""Does a stage's module compute what the reference computes, on real inputs?

Some models draw random numbers inside `forward` (`torch.rand(4)`). Symbolic tracing runs
those calls once and freezes their values into the graph, so a fresh eager call computes
something else. With `replay_rng` (the default) the global RNG is reset to the state used
at trace time before *every* call, of the reference and of the stage alike: the eager
model then draws exactly the values the trace froze, and stochastic modules that draw at
run time see the same stream on both sides. Inputs come from their own generator, so
drawing them never disturbs that state. The record says which reference each check used.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Reference:
    """What a stage is compared with, and the words the record uses for it."""

    fn: Callable[..., Any]
    label: str


def call_replayed(fn: Callable[..., Any], inputs: InputSet, rng_seed: int | None) -> Any:
    """Call `fn` on the inputs with the global RNG set to `rng_seed`, restoring it after."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if rng_seed is not None:
            torch.manual_seed(rng_seed)
        return inputs.call(fn)


def compare_outputs(expected: Any, actual: Any, tolerances: dict[str, Tolerance]) -> tuple[bool, str, float]:
    """Compare nested outputs leaf by leaf; returns (passed, detail in words, largest abs difference)."""
    exp_leaves, exp_spec = pytree.tree_flatten(_sorted_keys(expected))
    act_leaves, act_spec = pytree.tree_flatten(_sorted_keys(actual))
    if exp_spec != act_spec:
        return False, f"the outputs differ in structure: expected {exp_spec}, got {act_spec}", float("nan")
    worst = 0.0
    for index, (e, a) in enumerate(zip(exp_leaves, act_leaves)):
        where = f"output {index}" if len(exp_leaves) > 1 else "the output"
        if isinstance(e, torch.Tensor) and isinstance(a, torch.Tensor):
            if e.shape != a.shape or e.dtype != a.dtype:
                return False, f"{where}: expected {e.dtype}{list(e.shape)}, got {a.dtype}{list(a.shape)}", float("nan")
            if e.numel():
                worst = max(worst, (e.double() - a.double()).abs().max().item())
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
    """Run module and reference on every input set; stop at the first set that differs."""
    worst = 0.0
    detail = "no input sets"
    for index, inputs in enumerate(input_sets):
        try:
            expected = call_replayed(reference.fn, inputs, rng_seed)
        except Exception as exc:  # noqa: BLE001 - reported as a failed call, never as a difference
            raise CallFailed("reference", index, exc) from exc
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
