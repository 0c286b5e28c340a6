"""Unit tests of the equivalence checks and the recipe expectations (fxflow.checks)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fxflow.checks import expectations as ex
from fxflow.checks.equivalence import Reference, call_replayed, check_equivalence, compare_outputs
from fxflow.facts import flatten
from fxflow.inputs import InputSet
from fxflow.config.schema import ExpectedError, Tolerance
from fxflow.partitioning.torch_backend import PartitionRefused

# --------------------------------------------------------------------------- equivalence.compare


def nested(scale: float = 1.0) -> tuple:
    base = torch.arange(4, dtype=torch.float32)
    return (base * scale, {"a": [base + 1, 7], "b": (torch.ones(2, 2), "tag")})


def test_compare_nested_equal_passes():
    ok, detail, worst = compare_outputs(nested(), nested(), {})
    assert ok, detail
    assert worst == 0.0
    assert detail == "all 5 outputs match"


def test_compare_structure_mismatch_tuple_vs_list():
    ok, detail, worst = compare_outputs((torch.ones(2),), [torch.ones(2)], {})
    assert not ok
    assert "differ in structure" in detail
    assert math.isnan(worst)


def test_compare_structure_mismatch_missing_dict_key():
    ok, detail, _ = compare_outputs({"a": torch.ones(2), "b": 1}, {"a": torch.ones(2)}, {})
    assert not ok and "differ in structure" in detail


def test_compare_value_mismatch_reports_leaf_and_diff():
    ok, detail, worst = compare_outputs(nested(), nested(scale=2.0), {})
    assert not ok
    assert detail.startswith("output 0:")
    assert worst == pytest.approx(3.0)  # arange(4)*2 - arange(4) at index 3


def test_compare_non_tensor_leaf_mismatch():
    expected = (torch.ones(1), {"n": 3})
    ok, detail, _ = compare_outputs(expected, (torch.ones(1), {"n": 4}), {})
    assert not ok
    assert detail == "output 1: expected 3, got 4"


def test_compare_shape_and_dtype_mismatch():
    ok, detail, _ = compare_outputs(torch.ones(2, 2), torch.ones(4), {})
    assert not ok and "[2, 2]" in detail and "[4]" in detail
    ok, detail, _ = compare_outputs(torch.ones(2), torch.ones(2, dtype=torch.float64), {})
    assert not ok and "torch.float32" in detail and "torch.float64" in detail


def test_compare_nan_equals_nan():
    t = torch.tensor([1.0, float("nan")])
    assert compare_outputs(t, t.clone(), {})[0]


def test_compare_empty_tensors():
    ok, _, worst = compare_outputs(torch.empty(0, 3), torch.empty(0, 3), {})
    assert ok and worst == 0.0


def test_compare_dtype_tolerance_override():
    expected = torch.ones(3)
    actual = expected + 1e-3
    # torch's default float32 tolerance refuses a 1e-3 difference
    assert not compare_outputs(expected, actual, {})[0]
    # a looser float32 tolerance accepts it
    loose = {"float32": Tolerance(rtol=0.0, atol=1e-2)}
    ok, _, worst = compare_outputs(expected, actual, loose)
    assert ok and worst == pytest.approx(1e-3, rel=1e-3)
    # a tolerance for another dtype does not apply to float32
    assert not compare_outputs(expected, actual, {"float64": Tolerance(rtol=0.0, atol=1e-2)})[0]


def test_compare_tight_tolerance_refuses_what_default_accepts():
    expected = torch.ones(3)
    actual = expected + 1e-7
    assert compare_outputs(expected, actual, {})[0]
    assert not compare_outputs(expected, actual, {"float32": Tolerance(rtol=0.0, atol=0.0)})[0]


def test_compare_integer_tensors_are_exact():
    assert compare_outputs(torch.tensor([1, 2]), torch.tensor([1, 2]), {})[0]
    assert not compare_outputs(torch.tensor([1, 2]), torch.tensor([1, 3]), {})[0]


def test_compare_tensor_against_non_tensor_is_a_mismatch():
    ok, detail, _ = compare_outputs(torch.ones(2), 1.0, {})
    assert not ok and "the output: expected Tensor" in detail


def test_compare_dicts_ignore_key_order():
    ok, detail, _ = compare_outputs({"a": torch.ones(2), "b": 1}, {"b": 1, "a": torch.ones(2)}, {})
    assert ok, detail


# --------------------------------------------------------------------------- equivalence with RNG replay


class AddRandom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand(4)


SEED = 1234


def traced_add_random() -> tuple[nn.Module, torch.fx.GraphModule]:
    model = AddRandom()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        gm = torch.fx.symbolic_trace(model)
    return model, gm


def input_sets_of(n: int) -> list[InputSet]:
    gen = torch.Generator().manual_seed(0)
    return [InputSet({"x": torch.rand(4, generator=gen)}) for _ in range(n)]


def test_equivalence_with_rng_replay_passes():
    model, gm = traced_add_random()
    entry = check_equivalence("trace", gm, Reference(model, "eager"), input_sets_of(3), SEED, {})
    assert entry.passed, entry.detail
    assert entry.name == "equivalence.trace"
    assert entry.stage == "trace"
    assert entry.reference == "eager"
    assert entry.extra["rng_replayed"] is True
    assert entry.extra["input_sets"] == "3/3"
    assert entry.extra["max_abs_diff"] == 0.0


def test_equivalence_without_rng_replay_fails():
    model, gm = traced_add_random()
    entry = check_equivalence("trace", gm, Reference(model, "eager"), input_sets_of(3), None, {})
    assert not entry.passed
    assert entry.extra["rng_replayed"] is False
    assert entry.extra["input_sets"] == "1/3"  # stops at the first failing set
    assert entry.detail.startswith("input set 0:")
    assert entry.extra["max_abs_diff"] > 0


def test_equivalence_with_the_wrong_seed_fails():
    model, gm = traced_add_random()
    entry = check_equivalence("trace", gm, Reference(model, "eager"), input_sets_of(1), SEED + 1, {})
    assert not entry.passed


def test_equivalence_reports_the_failing_input_set():
    """A module that only differs on the second input set."""

    def reference(x):
        return x

    def module(x):
        return x if bool(x[0] == 0) else x + 1

    sets = [InputSet({"x": torch.zeros(2)}), InputSet({"x": torch.ones(2)})]
    entry = check_equivalence("s", module, Reference(reference, "ref"), sets, None, {})
    assert not entry.passed
    assert entry.extra["input_sets"] == "2/2"
    assert entry.detail.startswith("input set 1:")


def test_the_reference_runs_once_per_input_set_and_a_stage_cannot_write_into_its_kept_output():
    """Every stage of a run is compared with the same reference figures: the reference is called
    once per input set (a large model's eager forward is paid once, not per stage), and a stage
    that writes in place into a tensor the reference returned (here the model's own buffer)
    cannot change the figures it is compared with (before, the expected output was that very
    buffer, so such a stage passed)."""

    class Buffered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("state", torch.ones(2))

        def forward(self, x):
            return self.state

    model = Buffered()
    calls = []
    reference = Reference(lambda x: calls.append(1) or model(x), "eager")
    sets = input_sets_of(2)
    for stage in ("a", "b"):
        assert check_equivalence(stage, lambda x: torch.ones(2), reference, sets, None, {}).passed
    assert len(calls) == 2, f"the reference ran {len(calls)} times for 2 input sets over 2 stages"

    def vandal(x):
        model.state.fill_(5.0)  # writes into the tensor the reference returned
        return model.state

    assert not check_equivalence("c", vandal, reference, sets, None, {}).passed
    assert len(calls) == 2


def test_call_replayed_restores_the_global_rng_and_passes_inputs_in_order():
    torch.manual_seed(99)
    state = torch.get_rng_state()
    out = call_replayed(lambda a, b: (a - b) + torch.rand(1) * 0, InputSet({"a": torch.tensor(5.0), "b": torch.tensor(2.0)}), 7)
    assert torch.equal(torch.get_rng_state(), state)
    assert out.item() == 3.0
    # the same seed gives the same draw every time
    draw = lambda: torch.rand(3)  # noqa: E731
    assert torch.equal(call_replayed(draw, InputSet({}), 7), call_replayed(draw, InputSet({}), 7))
    assert not torch.equal(call_replayed(draw, InputSet({}), 7), call_replayed(draw, InputSet({}), 8))


# --------------------------------------------------------------------------- expectations.flatten


def test_flatten_nested_dicts_and_lists_of_mappings():
    facts = {
        "partition": {
            "num_partitions": 2,
            "partitions": [{"id": 0, "nodes": ["a", "b"]}, {"id": 1, "nodes": ["c"]}],
            "devices": {"dev_0": {"used_bytes": 48}},
            "idle_devices": [],
        }
    }
    assert flatten(facts) == {
        "partition.num_partitions": 2,
        "partition.partitions.0.id": 0,
        "partition.partitions.0.nodes": ["a", "b"],
        "partition.partitions.1.id": 1,
        "partition.partitions.1.nodes": ["c"],
        "partition.devices.dev_0.used_bytes": 48,
        "partition.idle_devices": [],
    }


def test_flatten_scalar_and_non_string_keys():
    assert flatten(5, "x") == {"x": 5}
    assert flatten({1: {2: "v"}}) == {"1.2": "v"}


def test_flatten_expectations_keeps_comparisons_as_leaves():
    flat = ex.flatten_expectations({"p": {"lat": {"approx": 208.0, "rel": 1e-6}, "n": 3, "q": {"ge": 1}}})
    assert flat == {"p.lat": {"approx": 208.0, "rel": 1e-6}, "p.n": 3, "p.q": {"ge": 1}}


# --------------------------------------------------------------------------- expectations.compare


@pytest.mark.parametrize(
    "actual, expected, ok",
    [
        (3, 3, True),
        (3, 4, False),
        ([1, 2], [1, 2], True),
        ([1, 2], (1, 2), True),  # YAML lists compare to tuples element-wise
        ([1, 2], [1, 2, 3], False),
        (3, {"eq": 3}, True),
        (3, {"eq": 4}, False),
        (3, {"ne": 4}, True),
        (3, {"ne": 3}, False),
        (208.0000001, {"approx": 208.0, "rel": 1e-6}, True),
        (209.0, {"approx": 208.0, "rel": 1e-6}, False),
        (208.5, {"approx": 208.0, "rel": 0, "abs": 1}, True),
        (208.0, {"approx": 208.0}, True),
        ("208", {"approx": 208.0}, False),
        (2, {"ge": 2}, True),
        (1, {"ge": 2}, False),
        (3, {"gt": 2, "lt": 4}, True),
        (4, {"gt": 2, "lt": 4}, False),
        (2, {"le": 2}, True),
        ("x", {"ge": 2}, False),  # a TypeError is a failed comparison
        (None, {"lt": 1}, False),
        ([0, 1, 2, 3], {"len": 4}, True),
        ([0, 1, 2], {"len": 4}, False),
        (5, {"len": 1}, False),
        (["dev_0", "dev_2"], {"contains": "dev_2"}, True),
        (["dev_0"], {"contains": "dev_2"}, False),
        (7, {"contains": 7}, False),
    ],
)
def test_compare_expectation(actual, expected, ok):
    passed, detail = ex.judge(actual, expected)
    assert passed is ok
    assert repr(actual) in detail


def test_modifier_only_expectation_does_not_pass_vacuously():
    passed, _ = ex.judge(1_000_000, {"rel": 0.01})
    assert not passed


# --------------------------------------------------------------------------- expectations.check_metrics


METRICS = {
    "partition.num_partitions": 3,
    "partition.partitions.0.used_mem_bytes": 48,
    "partition.partitions.1.used_mem_bytes": 48,
    "partition.partitions.2.used_mem_bytes": 48,
    "partition.partitions.0.latency": [1.0, 2.0],
    "size_nodes.total_bytes": 144,
}


def test_check_metrics_exact_and_comparison():
    entries = ex.check_metrics(METRICS, {"partition": {"num_partitions": 3}, "size_nodes": {"total_bytes": {"ge": 100}}})
    assert [(e.name, e.passed) for e in entries] == [
        ("expect.partition.num_partitions", True),
        ("expect.size_nodes.total_bytes", True),
    ]
    assert entries[0].actual == 3


def test_check_metrics_value_mismatch_fails():
    (entry,) = ex.check_metrics(METRICS, {"partition": {"num_partitions": 2}})
    assert entry.passed is False
    assert entry.actual == 3
    assert "partition.num_partitions" in entry.detail and "got 3" in entry.detail


def test_check_metrics_wildcard_all_match():
    (entry,) = ex.check_metrics(METRICS, {"partition": {"partitions": {"*": {"used_mem_bytes": 48}}}})
    assert entry.name == "expect.partition.partitions.*.used_mem_bytes"
    assert entry.passed is True
    assert entry.actual == {f"partition.partitions.{i}.used_mem_bytes": 48 for i in range(3)}
    assert "partition.partitions.2.used_mem_bytes" in entry.detail  # names what matched


def test_check_metrics_wildcard_one_differs():
    metrics = dict(METRICS, **{"partition.partitions.1.used_mem_bytes": 64})
    (entry,) = ex.check_metrics(metrics, {"partition.partitions.*.used_mem_bytes": 48})
    assert entry.passed is False
    assert "partition.partitions.1.used_mem_bytes" in entry.detail
    assert "partition.partitions.0.used_mem_bytes" not in entry.detail


def test_check_metrics_wildcard_matches_nothing():
    (entry,) = ex.check_metrics(METRICS, {"partition.partitions.*.latency_ms": 1})
    assert entry.passed is False
    assert "no metric" in entry.detail
    assert "partition.num_partitions" in entry.detail  # lists what was recorded under the stage


def test_check_metrics_wildcard_is_one_segment():
    # `*` does not match across dots: partition.*.used_mem_bytes has no match
    (entry,) = ex.check_metrics(METRICS, {"partition.*.used_mem_bytes": 48})
    assert entry.passed is False


def test_check_metrics_key_is_not_a_regex():
    # the '.' of the key must not match any character
    (entry,) = ex.check_metrics({"sizeXnodes.total_bytes": 1}, {"size.nodes.total_bytes": 1})
    assert entry.passed is False


def test_check_metrics_missing_metric():
    (entry,) = ex.check_metrics(METRICS, {"partition": {"critical_path_latency": 1}})
    assert entry.passed is False
    assert "no metric 'partition.critical_path_latency'" in entry.detail


# --------------------------------------------------------------------------- expectations.check_error


def expected(**kw) -> ExpectedError:
    return ExpectedError(**{"stage": "partition", **kw})


def test_check_error_none_when_nothing_expected():
    assert ex.check_error(None, "partition", RuntimeError("x")) is None
    assert ex.check_error(None, None, None) is None


def test_check_error_fails_when_no_error_happened():
    entry = ex.check_error(expected(type="RuntimeError"), None, None)
    assert entry.name == "expect.error"
    assert entry.passed is False
    assert "RuntimeError" in entry.detail and "partition" in entry.detail


def test_check_error_type_matches_a_subclass_by_mro_name():
    error = PartitionRefused("node 'linear' needs 96 B")
    entry = ex.check_error(expected(type="RuntimeError"), "partition", error)
    assert entry.passed is True
    assert entry.actual == {"stage": "partition", "type": "PartitionRefused", "message": str(error)}
    assert ex.check_error(expected(type="Exception"), "partition", error).passed is True
    assert ex.check_error(expected(type="fxflow.partitioning.torch_backend.PartitionRefused"), "partition", error).passed
    assert ex.check_error(expected(type="builtins.RuntimeError"), "partition", error).passed


def test_check_error_unrelated_type_fails():
    entry = ex.check_error(expected(type="KeyError"), "partition", PartitionRefused("x"))
    assert entry.passed is False
    # a superclass error does not match an expected subclass
    assert ex.check_error(expected(type="PartitionRefused"), "partition", RuntimeError("x")).passed is False


def test_check_error_stage_mismatch_fails():
    entry = ex.check_error(expected(type="RuntimeError"), "size_nodes", RuntimeError("x"))
    assert entry.passed is False
    assert entry.actual["stage"] == "size_nodes"


def test_check_error_message_regex():
    error = RuntimeError("node 'linear' needs 96 B but the largest device has 40 B")
    assert ex.check_error(expected(match=r"needs \d+ B"), "partition", error).passed is True
    assert ex.check_error(expected(match=r"^node 'linear'"), "partition", error).passed is True
    assert ex.check_error(expected(match=r"needs \d+ GB"), "partition", error).passed is False


def test_check_error_entry_records_what_was_expected():
    entry = ex.check_error(expected(type="RuntimeError", match="x"), "partition", RuntimeError("x"))
    assert entry.expected == {"stage": "partition", "type": "RuntimeError", "match": "x"}
