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

from fxflow.config.schema import Tolerance


@dataclass
class Reference:
    fn: Callable[..., Any]
    label: str


def call_replayed(fn: Callable[..., Any], inputs: dict[str, Any], rng_seed: int | None) -> Any:
    """Call `fn` on the inputs (in declared order) with the global RNG set to `rng_seed`, restoring it after."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if rng_seed is not None:
            torch.manual_seed(rng_seed)
        return fn(*inputs.values())


def compare(expected: Any, actual: Any, tolerances: dict[str, Tolerance]) -> tuple[bool, str, float]:
    """Compare nested outputs leaf by leaf; returns (passed, detail, max abs diff)."""
    exp_leaves, exp_spec = pytree.tree_flatten(_sorted_keys(expected))
    act_leaves, act_spec = pytree.tree_flatten(_sorted_keys(actual))
    if exp_spec != act_spec:
        return False, f"output structure differs: expected {exp_spec}, got {act_spec}", float("nan")
    worst = 0.0
    for index, (e, a) in enumerate(zip(exp_leaves, act_leaves)):
        if isinstance(e, torch.Tensor) and isinstance(a, torch.Tensor):
            if e.shape != a.shape or e.dtype != a.dtype:
                return False, f"leaf {index}: expected {e.dtype}{list(e.shape)}, got {a.dtype}{list(a.shape)}", float("nan")
            if e.numel():
                worst = max(worst, (e.double() - a.double()).abs().max().item())
            tol = tolerances.get(str(e.dtype).removeprefix("torch."))
            try:
                torch.testing.assert_close(a, e, rtol=tol.rtol if tol else None, atol=tol.atol if tol else None, equal_nan=True)
            except AssertionError as exc:
                return False, f"leaf {index}: " + " ".join(str(exc).split())[:300], worst
        elif isinstance(e, torch.Tensor) or isinstance(a, torch.Tensor):
            return False, f"leaf {index}: expected {type(e).__name__}, got {type(a).__name__}", worst
        elif e != a:
            return False, f"leaf {index}: expected {e!r}, got {a!r}", worst
    return True, f"{len(exp_leaves)} output leaves match", worst


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
    input_sets: list[dict[str, Any]],
    rng_seed: int | None,
    tolerances: dict[str, Tolerance],
) -> dict[str, Any]:
    """Run module and reference on every input set; one check entry for the record."""
    worst = 0.0
    for index, inputs in enumerate(input_sets):
        expected = call_replayed(reference.fn, inputs, rng_seed)
        actual = call_replayed(module, inputs, rng_seed)
        ok, detail, diff = compare(expected, actual, tolerances)
        worst = max(worst, diff) if diff == diff else worst
        if not ok:
            return _entry(stage, reference, False, index + 1, len(input_sets), worst, f"input set {index}: {detail}", rng_seed)
    return _entry(stage, reference, True, len(input_sets), len(input_sets), worst, detail, rng_seed)


def _entry(stage: str, ref: Reference, passed: bool, ran: int, total: int, worst: float, detail: str, rng_seed: int | None) -> dict[str, Any]:
    return {
        "name": f"equivalence.{stage}",
        "passed": passed,
        "stage": stage,
        "reference": ref.label,
        "rng_replayed": rng_seed is not None,
        "input_sets": f"{ran}/{total}",
        "max_abs_diff": worst,
        "detail": detail,
    }
