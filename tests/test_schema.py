"""Unit tests of the config schema, `validate` and the problem/error reporting."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from fxflow.config.errors import ConfigError, ConfigProblem, did_you_mean, join_path
from fxflow.config.schema import DeviceSpec, InputSpec, RunConfig
from fxflow.config.targets import model_factory
from fxflow.plan import RunPlan, plan_run as validate
from fxflow.models.partition_examples import Add
from fxflow.tracers import SymbolicTracer
from fxflow.transforms.partition import PartitionOverDevices
from fxflow.transforms.sizing import SizeNodes

ADD = "fxflow.models.partition_examples.Add"


@model_factory
def make_add() -> Add:
    """A registered factory function returning the module."""
    return Add()


def minimal() -> dict:
    """A valid minimal config: Add over two [4] inputs, one device, size then partition."""
    return {
        "recipe": "unit",
        "model": {
            "module": {"_target_": ADD},
            "inputs": {"a": {"shape": [4]}, "b": {"shape": [4]}},
        },
        "devices": {"dev_0": {"mem_bytes": 1000, "logical_id": 0}},
        "tracer": {"_target_": "fxflow.tracers.SymbolicTracer"},
        "transforms": {
            "size_nodes": {"_target_": "fxflow.transforms.sizing.SizeNodes"},
            "partition": {"_target_": "fxflow.transforms.partition.PartitionOverDevices"},
        },
    }


def problems_of(cfg: dict) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    return info.value.problems


def paths_of(cfg: dict) -> list[str]:
    return [p.path for p in problems_of(cfg)]


# --------------------------------------------------------------------------- valid configs


def test_minimal_config_gives_a_plan():
    plan = validate(minimal())
    assert isinstance(plan, RunPlan)
    assert isinstance(plan.spec, RunConfig)
    assert isinstance(plan.tracer, SymbolicTracer)
    assert list(plan.transforms) == ["size_nodes", "partition"]
    assert isinstance(plan.transforms["size_nodes"], SizeNodes)
    assert isinstance(plan.transforms["partition"], PartitionOverDevices)
    assert plan.transforms["partition"].mode == "size_based"
    assert plan.model_factory.obj is Add and plan.model_factory.kind == "module"
    assert plan.reference_factory is None
    assert plan.stages == ["trace", "size_nodes", "partition"]
    # defaults filled in
    assert plan.spec.seed == 0
    assert plan.spec.equivalence.stages == "final"
    assert plan.spec.model.inputs["a"].dtype == "float32"
    assert plan.spec.model.inputs["a"].dist == "rand"


def test_validate_does_not_mutate_the_input_dict():
    cfg = minimal()
    before = copy.deepcopy(cfg)
    validate(cfg)
    assert cfg == before


def test_component_parameters_reach_the_built_component():
    cfg = minimal()
    cfg["transforms"]["partition"]["mode"] = "sparse_nn"
    cfg["transforms"]["partition"]["transfer_rate_bytes_per_sec"] = 2
    plan = validate(cfg)
    assert plan.transforms["partition"].mode == "sparse_nn"
    assert plan.transforms["partition"].transfer_rate_bytes_per_sec == 2.0


def test_nested_latency_model_is_built():
    cfg = minimal()
    cfg["transforms"]["partition"].update(
        mode="cost_aware", transfer_rate_bytes_per_sec=2,
        latency_model={"_target_": "fxflow.partitioning.latency.SizeRuleLatency", "unweighted_per_byte": 0},
    )
    plan = validate(cfg)
    model = plan.transforms["partition"].latency_model
    assert type(model).__name__ == "SizeRuleLatency"
    assert model.unweighted_per_byte == 0


def test_reference_target_is_resolved():
    cfg = minimal()
    cfg["equivalence"] = {"reference": {"_target_": "fxflow.models.partition_examples.Mul"}}
    plan = validate(cfg)
    assert plan.reference_factory.obj.__name__ == "Mul"


# --------------------------------------------------------------------------- memory sizes


@pytest.mark.parametrize(
    "given, expected",
    [("33MB", 33_000_000), ("32MiB", 33_554_432), (1000, 1000), (33_000_000, 33_000_000), ("1.5GB", 1_500_000_000),
     ("20 KB", 20_000), ("20kB", 20_000), ("20 KiB", 20_480), ("1.5KiB", 1536), ("33000000", 33_000_000), ("4 B", 4)],
)
def test_memory_sizes_are_parsed(given, expected):
    cfg = minimal()
    cfg["devices"]["dev_0"]["mem_bytes"] = given
    assert validate(cfg).spec.devices["dev_0"].mem_bytes == expected


def test_memory_plain_int_is_kept_as_int():
    spec = DeviceSpec(mem_bytes=12345, logical_id=0)
    assert spec.mem_bytes == 12345
    assert type(spec.mem_bytes) is int


@pytest.mark.parametrize("bad", ["33XB", -5, 0, "abc", True, "4 Kb", "4 mb", "4b", "2 kib", "0.5B", 1.5])
def test_bad_memory_is_a_problem_at_its_path(bad):
    cfg = minimal()
    cfg["devices"]["dev_0"]["mem_bytes"] = bad
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["devices.dev_0.mem_bytes"]
    assert problems[0].value == bad
    assert "33MB" in problems[0].message  # names the accepted forms
    assert "devices.dev_0.mem_bytes" in problems[0].render()


@pytest.mark.parametrize("bits, meant", [("4 Kb", "4kB"), ("4 mb", "4MB"), ("16Gb", "16GB")])
def test_a_lowercase_b_is_bits_and_is_refused_with_the_byte_unit_meant(bits, meant):
    cfg = minimal()
    cfg["devices"]["dev_0"]["mem_bytes"] = bits
    message = problems_of(cfg)[0].message
    assert "lowercase b means bits" in message and f"did you mean {meant}?" in message


def test_negative_and_zero_memory_say_must_be_positive():
    for bad in (-5, 0):
        cfg = minimal()
        cfg["devices"]["dev_0"]["mem_bytes"] = bad
        assert "must be positive" in problems_of(cfg)[0].message


# --------------------------------------------------------------------------- unknown keys / values


def test_unknown_transform_key_suggests_the_close_one():
    cfg = minimal()
    cfg["transforms"]["partition"]["mod"] = "sparse_nn"
    problems = problems_of(cfg)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.path == "transforms.partition.mod"
    assert "unknown key" in problem.message
    assert "did you mean 'mode'" in problem.message
    assert problem.accepted == ""  # the close names, not every field


def test_unknown_top_level_key_suggests_the_close_one():
    cfg = minimal()
    cfg["modle"] = {}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["modle"]
    assert "did you mean 'model'" in problems[0].message
    assert "tracer" not in problems[0].render()  # the close name only, not every top-level key


def test_unknown_key_in_nested_latency_model_has_full_path():
    cfg = minimal()
    cfg["transforms"]["partition"]["latency_model"] = {
        "_target_": "fxflow.partitioning.latency.SizeRuleLatency",
        "unweighted_per_byt": 1,
    }
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.partition.latency_model.unweighted_per_byt"]
    assert "did you mean 'unweighted_per_byte'" in problems[0].message


def test_unknown_transform_target_names_the_target_path():
    cfg = minimal()
    cfg["transforms"]["x"] = {"_target_": "fxflow.transforms.NoSuchTransform"}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.x._target_"]
    assert problems[0].value == "fxflow.transforms.NoSuchTransform"
    assert "cannot be imported" in problems[0].message
    # the accepted list names the shipped transforms
    assert "fxflow.transforms.sizing.SizeNodes" in problems[0].accepted
    assert "fxflow.transforms.partition.PartitionOverDevices" in problems[0].accepted


def test_transform_target_that_is_not_a_transform():
    cfg = minimal()
    cfg["transforms"]["x"] = {"_target_": "fxflow.tracers.SymbolicTracer"}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.x._target_"]
    assert "is not a Transform" in problems[0].message


def test_transform_without_target_is_reported():
    cfg = minimal()
    cfg["transforms"]["x"] = {"mode": "size_based"}
    problems = problems_of(cfg)
    assert "transforms.x._target_" in [p.path for p in problems]


def test_unknown_mode_value_is_reported_with_the_choices():
    cfg = minimal()
    cfg["transforms"]["partition"]["mode"] = "bogus"
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.partition.mode"]
    assert problems[0].value == "bogus"
    assert "size_based" in problems[0].message and "sparse_nn" in problems[0].message


def test_cost_aware_without_latency_model_is_reported():
    cfg = minimal()
    cfg["transforms"]["partition"]["mode"] = "cost_aware"
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.partition"]
    assert "latency_model" in problems[0].message


def test_unimportable_leaf_module_is_reported_on_the_tracer():
    cfg = minimal()
    cfg["tracer"]["leaf_modules"] = ["torch.nn.NoSuchModule"]
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["tracer.leaf_modules"]
    assert "torch.nn.NoSuchModule" in problems[0].message


def test_missing_required_key_is_reported():
    cfg = minimal()
    del cfg["model"]["inputs"]
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["model.inputs"]
    assert "missing" in problems[0].message


def test_missing_tracer_section_is_reported_once():
    cfg = minimal()
    del cfg["tracer"]
    assert paths_of(cfg) == ["tracer"]


def test_negative_tolerance_is_reported():
    cfg = minimal()
    cfg["equivalence"] = {"tolerances": {"float32": {"rtol": -1, "atol": 0}}}
    assert paths_of(cfg) == ["equivalence.tolerances.float32.rtol"]


def test_invalid_expected_error_regex_is_reported():
    cfg = minimal()
    cfg["expect"] = {"error": {"stage": "partition", "match": "("}}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["expect.error.match"]  # the key itself
    assert "regular expression" in problems[0].message


# --------------------------------------------------------------------------- devices


def test_duplicate_device_names_via_name_field():
    cfg = minimal()
    cfg["devices"]["dev_1"] = {"mem_bytes": 1000, "logical_id": 1, "name": "dev_0"}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["devices.dev_1.name"]
    assert "devices.dev_0" in problems[0].message
    assert problems[0].value == "dev_0"


def test_distinct_device_names_via_name_field_pass():
    cfg = minimal()
    cfg["devices"]["dev_1"] = {"mem_bytes": 1000, "logical_id": 1, "name": "gpu_1"}
    assert validate(cfg).spec.devices["dev_1"].name == "gpu_1"


def test_partition_without_devices_is_reported():
    cfg = minimal()
    cfg["devices"] = {}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["devices"]
    assert "partition" in problems[0].message


# --------------------------------------------------------------------------- inputs


def test_input_with_neither_shape_nor_value():
    cfg = minimal()
    cfg["model"]["inputs"]["a"] = {"dtype": "float32"}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["model.inputs.a"]
    assert "`shape`" in problems[0].message and "`value`" in problems[0].message


def test_input_with_both_shape_and_value():
    with pytest.raises(ValidationError, match="exactly one of.*got shape, value"):
        InputSpec(shape=[2], value=3)


def test_input_with_literal_value_is_accepted():
    spec = InputSpec(value=None)  # an explicit None is a literal too
    assert spec.shape is None and spec.value is None
    assert InputSpec(value=[1, 2]).value == [1, 2]


def test_randint_without_high():
    cfg = minimal()
    cfg["model"]["inputs"]["a"] = {"shape": [4], "dtype": "int64", "dist": "randint"}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["model.inputs.a"]
    assert "high" in problems[0].message


def test_randint_with_high_not_above_low():
    with pytest.raises(ValidationError, match="high > low"):
        InputSpec(shape=[2], dtype="int64", dist="randint", low=5, high=5)


def test_float_distribution_for_integer_dtype_is_refused():
    with pytest.raises(ValidationError, match="randint"):
        InputSpec(shape=[2], dtype="int64", dist="rand")


def test_unknown_dtype_is_refused():
    cfg = minimal()
    cfg["model"]["inputs"]["a"] = {"shape": [4], "dtype": "float128"}
    assert paths_of(cfg) == ["model.inputs.a.dtype"]


def test_input_name_not_an_argument_of_forward():
    cfg = minimal()
    cfg["model"]["inputs"]["c"] = {"shape": [4]}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["model.inputs.c"]
    assert "not an argument" in problems[0].message
    assert problems[0].accepted == "a, b"


def test_renamed_input_reports_unknown_and_undeclared():
    cfg = minimal()
    cfg["model"]["inputs"]["x"] = cfg["model"]["inputs"].pop("a")
    problems = {p.path: p for p in problems_of(cfg)}
    assert set(problems) == {"model.inputs.x", "model.inputs.a"}
    assert "not declared" in problems["model.inputs.a"].message


def test_model_target_arguments_must_fit():
    cfg = minimal()
    cfg["model"]["module"] = {"_target_": "fxflow.models.partition_examples.LinearPlusInput", "hidden": 4}
    cfg["model"]["inputs"] = {"a": {"shape": [4]}}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["model.module"]
    assert "arguments do not fit" in problems[0].message
    assert problems[0].value == {"hidden": 4}


def test_arguments_to_a_module_without_init_are_refused():
    cfg = minimal()
    cfg["model"]["module"]["hidden"] = 4  # Add() takes no arguments
    assert paths_of(cfg) == ["model.module"]


def test_factory_function_returning_a_module_is_accepted(trust):
    trust(make_add.__module__)
    cfg = minimal()
    cfg["model"]["module"]["_target_"] = f"{make_add.__module__}.make_add"
    plan = validate(cfg)
    assert plan.model_factory.obj is make_add and plan.model_factory.kind == "factory"
    assert isinstance(plan.model_factory(), Add)


# --------------------------------------------------------------------------- several problems at once


def test_all_problems_are_reported_at_once():
    cfg = minimal()
    cfg["devices"]["dev_0"]["mem_bytes"] = "33XB"  # schema
    cfg["model"]["inputs"]["a"] = {"shape": [4], "dist": "randint"}  # schema
    cfg["tracer"]["bogus"] = 1  # tracer component
    cfg["transforms"]["partition"]["mod"] = "size_based"  # transform component
    cfg["transforms"]["x"] = {"_target_": "fxflow.transforms.NoSuchTransform"}  # transform target
    cfg["model"]["inputs"]["c"] = {"shape": [4]}  # input name
    with pytest.raises(ConfigError) as info:
        validate(cfg, files=["conf/a.yaml", "recipes/b.yaml"])
    error = info.value
    paths = sorted(p.path for p in error.problems)
    assert paths == sorted(
        [
            "devices.dev_0.mem_bytes",
            "model.inputs.a",
            "tracer.bogus",
            "transforms.partition.mod",
            "transforms.x._target_",
            "model.inputs.c",
        ]
    )
    assert len(error.problems) == 6
    text = str(error)
    assert text.startswith("the config of recipe 'unit' has 6 problem(s)")
    assert "conf/a.yaml, recipes/b.yaml" in text
    assert error.files == ["conf/a.yaml", "recipes/b.yaml"]
    for path in paths:
        assert f"  - {path}:" in text


def test_all_cross_check_problems_are_reported_at_once():
    cfg = minimal()
    cfg["transforms"] = {
        "partition": {"_target_": "fxflow.transforms.partition.PartitionOverDevices"},
        "size_nodes": {"_target_": "fxflow.transforms.sizing.SizeNodes"},
    }  # misordered
    cfg["devices"]["dev_1"] = {"mem_bytes": 10, "logical_id": 1, "name": "dev_0"}  # duplicate name
    cfg["expect"] = {"metrics": {"partiton": {"num_partitions": 1}}, "error": {"stage": "sizing"}}
    cfg["equivalence"] = {"stages": ["build"]}  # build is not a checkable stage
    problems = problems_of(cfg)
    assert sorted(p.path for p in problems) == sorted(
        ["transforms.partition", "devices.dev_1.name", "expect.metrics.partiton", "expect.error.stage", "equivalence.stages"]
    )


def test_schema_problem_does_not_hide_cross_check_problems():
    cfg = minimal()
    cfg["devices"]["dev_0"]["mem_bytes"] = "33XB"
    cfg["devices"]["dev_1"] = {"mem_bytes": 10, "logical_id": 1, "name": "dev_0"}
    cfg["expect"] = {"metrics": {"partiton": {"num_partitions": 1}}}
    assert sorted(paths_of(cfg)) == ["devices.dev_0.mem_bytes", "devices.dev_1.name", "expect.metrics.partiton"]


# --------------------------------------------------------------------------- cross checks


def test_partition_before_size_nodes_is_misordered():
    cfg = minimal()
    cfg["transforms"] = {
        "partition": {"_target_": "fxflow.transforms.partition.PartitionOverDevices"},
        "size_nodes": {"_target_": "fxflow.transforms.sizing.SizeNodes"},
    }
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["transforms.partition"]
    assert "node_sizes" in problems[0].message
    assert "misordered" in problems[0].message
    assert "fxflow.transforms.sizing.SizeNodes" in problems[0].accepted


def test_partition_twice_needs_sizing_again():
    """Partition invalidates node sizes, so a second partition needs a second SizeNodes."""
    cfg = minimal()
    cfg["transforms"]["partition_again"] = {"_target_": "fxflow.transforms.partition.PartitionOverDevices"}
    assert paths_of(cfg) == ["transforms.partition_again"]


def test_typo_in_a_transform_target_is_not_also_reported_as_misordered():
    cfg = minimal()
    cfg["transforms"]["size_nodes"]["_target_"] = "fxflow.transforms.SizeNode"
    assert paths_of(cfg) == ["transforms.size_nodes._target_"]


def test_expect_metrics_key_naming_no_stage():
    cfg = minimal()
    cfg["expect"] = {"metrics": {"partiton": {"num_partitions": 1}}}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["expect.metrics.partiton"]
    assert "names no stage" in problems[0].message
    assert "did you mean 'partition'" in problems[0].message
    assert problems[0].accepted == "build, trace, size_nodes, partition"


def test_expect_metrics_keys_for_builtin_and_transform_stages_pass():
    cfg = minimal()
    cfg["expect"] = {"metrics": {"build": {"kind": "module"}, "trace": {}, "partition": {"num_partitions": 1}}}
    assert validate(cfg).spec.expect.metrics["partition"] == {"num_partitions": 1}


def test_expect_error_stage_naming_no_stage():
    cfg = minimal()
    cfg["expect"] = {"error": {"stage": "partiton"}}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["expect.error.stage"]
    assert problems[0].value == "partiton"


def test_equivalence_stages_naming_no_stage():
    cfg = minimal()
    cfg["equivalence"] = {"stages": ["size_node"]}
    problems = problems_of(cfg)
    assert [p.path for p in problems] == ["equivalence.stages"]
    assert "did you mean 'size_nodes'" in problems[0].message


# --------------------------------------------------------------------------- errors module


def test_problem_render():
    assert ConfigProblem("a.b", "is wrong").render() == "a.b: is wrong"
    assert ConfigProblem("", "is wrong").render() == "<root>: is wrong"
    assert ConfigProblem("a", "bad", 3, "1, 2").render() == "a: bad (got 3); accepted: 1, 2"
    long = ConfigProblem("a", "bad", "x" * 200).render()
    assert long.endswith("...)") and len(long) < 120


def test_config_error_render_without_recipe_or_files():
    error = ConfigError([ConfigProblem("x", "bad")])
    assert str(error) == "the config has 1 problem(s):\n  - x: bad"


def test_join_path_skips_empty_parts():
    assert join_path("", "a", None, 0, "b") == "a.0.b"
    assert join_path() == ""


def test_did_you_mean():
    assert did_you_mean("mod", ["mode", "picture"]) == " (did you mean 'mode'?)"
    assert did_you_mean("zzzz", ["mode", "picture"]) == ""
