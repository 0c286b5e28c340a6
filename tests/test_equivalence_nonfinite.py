"""NaN and inf never make a stage look equal to its reference.

A corpus of non-finite outputs, inputs and weights: NaN/inf positions must agree, finite values
must be within tolerance, the largest difference is measured where both sides are finite, and a
reference output with no finite value is an error ("the reference is not finite"), never a pass.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fxflow.checks.equivalence import Reference, ReferenceNotFinite, check_equivalence, compare_outputs
from fxflow.inputs import InputSet

NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("expected, actual", [
    (torch.tensor([NAN, 1.0, 2.0]), torch.tensor([NAN, 1.0, 2.0])),
    (torch.tensor([INF, -INF, 3.0]), torch.tensor([INF, -INF, 3.0])),
    (torch.tensor([[NAN, INF], [0.5, -INF]]), torch.tensor([[NAN, INF], [0.5, -INF]])),
    (torch.tensor([NAN, 1.0], dtype=torch.float64), torch.tensor([NAN, 1.0], dtype=torch.float64)),
    (torch.tensor([complex(NAN, 0), 1 + 1j]), torch.tensor([complex(NAN, 0), 1 + 1j])),
], ids=["nan", "both-infs", "2d-mixed", "float64", "complex"])
def test_non_finite_at_the_same_places_with_equal_finite_values_match(expected, actual):
    ok, detail, worst = compare_outputs(expected, actual, {})
    assert ok, detail
    assert worst == 0.0


@pytest.mark.parametrize("expected, actual, words", [
    (torch.tensor([NAN, 1.0]), torch.tensor([1.0, NAN]), "NaN positions differ"),
    (torch.tensor([NAN, 1.0]), torch.tensor([0.0, 1.0]), "NaN positions differ"),
    (torch.tensor([0.0, 1.0]), torch.tensor([NAN, 1.0]), "NaN positions differ"),
    (torch.tensor([INF, 1.0]), torch.tensor([-INF, 1.0]), "+inf positions differ"),
    (torch.tensor([INF, 1.0]), torch.tensor([1e30, 1.0]), "+inf positions differ"),
    (torch.tensor([-INF, 1.0]), torch.tensor([NAN, 1.0]), "NaN positions differ"),
    (torch.tensor([INF, 1.0]), torch.tensor([NAN, 1.0]), "NaN positions differ"),
], ids=["nan-moved", "nan-lost", "nan-appeared", "inf-sign", "inf-to-finite", "neginf-to-nan", "inf-to-nan"])
def test_non_finite_positions_must_agree(expected, actual, words):
    ok, detail, _ = compare_outputs(expected, actual, {})
    assert not ok
    assert words in detail


def test_finite_values_beside_nan_are_still_compared():
    ok, detail, worst = compare_outputs(torch.tensor([NAN, 1.0, 2.0]), torch.tensor([NAN, 1.0, 2.5]), {})
    assert not ok
    assert worst == pytest.approx(0.5)  # measured where both are finite, not hidden by the NaN


def test_the_largest_difference_is_never_nan_and_never_hides_a_difference():
    expected = torch.tensor([NAN, INF, 1.0])
    ok, _, worst = compare_outputs(expected, torch.tensor([NAN, INF, 1.0 + 1e-7]), {})
    assert ok and math.isfinite(worst) and worst > 0


@pytest.mark.parametrize("reference", [
    torch.full((3,), NAN), torch.full((2, 2), INF), torch.tensor([NAN, INF, -INF]), NAN, INF,
    (torch.ones(2), torch.full((2,), NAN)),
], ids=["all-nan", "all-inf", "nan-and-infs", "float-nan", "float-inf", "one-leaf-of-two"])
def test_a_reference_with_no_finite_value_never_passes(reference):
    ok, detail, _ = compare_outputs(reference, reference, {})
    assert not ok
    assert "the reference is not finite" in detail


def test_integer_and_empty_outputs_are_not_non_finite():
    assert compare_outputs(torch.tensor([1, 2]), torch.tensor([1, 2]), {})[0]
    assert compare_outputs(torch.empty(0), torch.empty(0), {})[0]


# --------------------------------------------------------------------------- check_equivalence


def _sets(*values: torch.Tensor) -> list[InputSet]:
    return [InputSet({"x": v}) for v in values]


def test_an_all_nan_reference_output_is_an_error_not_a_pass():
    model = lambda x: x * NAN  # noqa: E731 - every output element NaN
    with pytest.raises(ReferenceNotFinite, match="the reference is not finite; pick other inputs") as info:
        check_equivalence("s", model, Reference(model, "eager"), _sets(torch.ones(3)), None, {})
    assert info.value.input_set == 0


def test_the_input_set_whose_reference_is_not_finite_is_named():
    model = lambda x: x / x.sum()  # noqa: E731 - all inf when the inputs sum to 0
    sets = _sets(torch.ones(2), torch.tensor([1.0, -1.0]))
    with pytest.raises(ReferenceNotFinite) as info:
        check_equivalence("s", model, Reference(model, "eager"), sets, None, {})
    assert info.value.input_set == 1


# --------------------------------------------------------------------------- inputs and weights


class _Scale(nn.Module):
    def __init__(self, weight: list[float]):
        super().__init__()
        self.linear = nn.Linear(2, len(weight), bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(weight).unsqueeze(1).expand(-1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_nan_weights_the_trace_keeps_match_and_a_stage_that_drops_them_fails():
    model = _Scale([NAN, 1.0, INF])
    traced = torch.fx.symbolic_trace(model)
    sets = _sets(torch.tensor([[1.0, 2.0]]))
    assert check_equivalence("trace", traced, Reference(model, "eager"), sets, None, {}).passed
    cleaned = _Scale([0.0, 1.0, INF])  # a stage that silently replaced the NaN weight
    entry = check_equivalence("clean", cleaned, Reference(model, "eager"), sets, None, {})
    assert not entry.passed and "NaN positions differ" in entry.detail


def test_all_nan_weights_are_an_error():
    model = _Scale([NAN, NAN])
    with pytest.raises(ReferenceNotFinite):
        check_equivalence("trace", torch.fx.symbolic_trace(model), Reference(model, "eager"),
                          _sets(torch.ones(1, 2)), None, {})


def test_nan_inputs_do_not_hide_a_wrong_operator():
    add, mul = (lambda x: x + 2.0), (lambda x: x * 2.0)  # 2 + 2 == 2 * 2: only the other positions tell
    sets = _sets(torch.tensor([NAN, 2.0, 3.0]))
    entry = check_equivalence("s", add, Reference(mul, "mul"), sets, None, {})
    assert not entry.passed
    assert entry.extra["max_abs_diff"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- whole runs


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_replace_target_nodes_with_a_non_finite_input_is_an_error(run_recipe, value):
    run = run_recipe("replace_target_nodes_with", "~model.inputs.a", f"+model.inputs.a={{value: {value}}}")
    assert run.summary["status"] == "error"
    assert "the reference is not finite; pick other inputs" in run.summary["error"]["message"]
    assert not [c for c in run.summary["checks"] if c["name"].startswith("equivalence") and c["passed"]]
