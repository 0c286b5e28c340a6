"""Unit tests of example-input generation (fxflow.inputs)."""

from __future__ import annotations

import pytest
import torch

from fxflow.config.schema import InputSpec
from fxflow.inputs import input_sets, make_input, make_inputs


def specs(**raw: dict) -> dict[str, InputSpec]:
    return {name: InputSpec(**spec) for name, spec in raw.items()}


MIXED = specs(
    a={"shape": [2, 3]},
    b={"shape": [5], "dist": "randn", "dtype": "float64"},
    ids={"shape": [16], "dtype": "int64", "dist": "randint", "low": 3, "high": 7},
)


def assert_same(x: dict, y: dict) -> None:
    assert list(x) == list(y)
    for name in x:
        assert torch.equal(x[name], y[name]), name


def test_same_seed_gives_identical_tensors():
    assert_same(make_inputs(MIXED, 7), make_inputs(MIXED, 7))


def test_different_seed_gives_different_tensors():
    one, two = make_inputs(MIXED, 7), make_inputs(MIXED, 8)
    assert not torch.equal(one["a"], two["a"])
    assert not torch.equal(one["b"], two["b"])
    assert not torch.equal(one["ids"], two["ids"])


def test_inputs_keep_declaration_order():
    out = make_inputs(specs(z={"shape": [1]}, a={"shape": [1]}, m={"value": 1}), 0)
    assert list(out) == ["z", "a", "m"]


def test_later_inputs_differ_from_earlier_ones_with_the_same_spec():
    out = make_inputs(specs(a={"shape": [8]}, b={"shape": [8]}), 0)
    assert not torch.equal(out["a"], out["b"])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("dist", ["rand", "randn"])
def test_float_dtype_and_shape_are_honoured(dtype, dist):
    x = make_inputs(specs(x={"shape": [3, 2], "dtype": dtype, "dist": dist}), 0)["x"]
    assert x.dtype == getattr(torch, dtype)
    assert x.shape == (3, 2)


def test_rand_is_in_unit_interval_and_randn_is_not():
    out = make_inputs(specs(u={"shape": [2000]}, n={"shape": [2000], "dist": "randn"}), 1)
    assert out["u"].min() >= 0 and out["u"].max() < 1
    assert out["n"].min() < 0 and out["n"].max() > 1


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8"])
def test_randint_bounds_and_dtype(dtype):
    x = make_inputs(specs(x={"shape": [4000], "dtype": dtype, "dist": "randint", "low": 3, "high": 7}), 0)["x"]
    assert x.dtype == getattr(torch, dtype)
    assert int(x.min()) == 3  # low is inclusive (and reached over 4000 draws)
    assert int(x.max()) == 6  # high is exclusive


def test_randint_bool():
    x = make_inputs(specs(x={"shape": [200], "dtype": "bool", "dist": "randint", "high": 2}), 0)["x"]
    assert x.dtype == torch.bool
    assert bool(x.any()) and not bool(x.all())


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_zeros_and_ones(dtype):
    out = make_inputs(
        specs(z={"shape": [2, 2], "dtype": dtype, "dist": "zeros"}, o={"shape": [3], "dtype": dtype, "dist": "ones"}), 0
    )
    assert out["z"].dtype == getattr(torch, dtype) and out["o"].dtype == getattr(torch, dtype)
    assert out["z"].shape == (2, 2) and out["o"].shape == (3,)
    assert torch.equal(out["z"], torch.zeros(2, 2, dtype=getattr(torch, dtype)))
    assert torch.equal(out["o"], torch.ones(3, dtype=getattr(torch, dtype)))


def test_empty_and_scalar_shapes():
    out = make_inputs(specs(e={"shape": [0, 3]}, s={"shape": []}), 0)
    assert out["e"].shape == (0, 3)
    assert out["s"].shape == () and out["s"].dim() == 0


@pytest.mark.parametrize("value", [3, 2.5, "mode", [1, 2], {"k": 1}, None, True])
def test_literal_value_is_returned_as_is(value):
    assert make_inputs(specs(v={"value": value}), 0)["v"] == value


def test_literal_values_do_not_consume_the_stream():
    """A literal between two tensors doesn't change the tensors drawn after it."""
    with_literal = make_inputs(specs(a={"shape": [4]}, k={"value": 1}, b={"shape": [4]}), 5)
    without = make_inputs(specs(a={"shape": [4]}, b={"shape": [4]}), 5)
    assert torch.equal(with_literal["b"], without["b"])


def test_make_input_uses_the_given_generator():
    spec = InputSpec(shape=[6])
    first = make_input(spec, torch.Generator().manual_seed(3))
    again = make_input(spec, torch.Generator().manual_seed(3))
    other = make_input(spec, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_drawing_inputs_leaves_the_global_rng_untouched():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    make_inputs(MIXED, 0)
    input_sets(MIXED, 0, 3)
    assert torch.equal(torch.get_rng_state(), state)
    # and the next global draw is what it would have been without the inputs
    after = torch.rand(5)
    torch.manual_seed(1234)
    assert torch.equal(after, torch.rand(5))


def test_inputs_do_not_depend_on_the_global_rng():
    torch.manual_seed(1)
    one = make_inputs(MIXED, 0)
    torch.manual_seed(2)
    torch.rand(100)
    two = make_inputs(MIXED, 0)
    assert_same(one, two)


def test_input_sets_are_the_declared_set_plus_fresh_ones():
    sets = input_sets(MIXED, 10, 2)
    assert len(sets) == 3
    assert_same(sets[0], make_inputs(MIXED, 10))
    assert_same(sets[1], make_inputs(MIXED, 11))
    assert_same(sets[2], make_inputs(MIXED, 12))
    assert not torch.equal(sets[0]["a"], sets[1]["a"])
    assert len(input_sets(MIXED, 0, 0)) == 1
