"""Each recipe's pins hold what its README row promises: break the thing a pin is about and the
recipe, run as written, fails (or stops with an error); leave it intact and it passes (the intact
runs are tests/test_recipes.py). Also: a catalogue's own failed cases bind in any run, and check
lines say what was checked."""

from __future__ import annotations

import numbers
import re
from pathlib import Path
from typing import List, Optional, Union

import pytest
import torch
from omegaconf import OmegaConf
from torch.fx.operator_schemas import create_type_hint

from conftest import OPINFO_DB
from fxflow.checks.probe_failures import check_probe_failures
from fxflow.checks.result import Check
from fxflow.recipes import recipe_files
from fxflow.reports.console import describe

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def failed_checks(run) -> list[str]:
    return [c["name"] for c in run.summary["checks"] if not c["passed"]]


def equivalence_held(run) -> bool:
    checks = [c for c in run.summary["checks"] if c["name"].startswith("equivalence.")]
    return bool(checks) and all(c["passed"] for c in checks)


# --------------------------------------------------------------------------- sparse_nn placement


def test_sparse_nn_fails_when_the_device_list_is_reversed(run_recipe, monkeypatch):
    """The partitioner sees the devices in reverse order: the split module still computes the same,
    but the partitions land elsewhere, which the per-partition placement pins catch."""
    from torch.fx.experimental.accelerator_partitioner import Partitioner

    original = Partitioner.partition_graph

    def reversed_devices(self, fx_module, torch_module, config):
        return original(self, fx_module, torch_module, config._replace(devices=list(reversed(config.devices))))

    monkeypatch.setattr(Partitioner, "partition_graph", reversed_devices)
    run = run_recipe("sparse_nn", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert equivalence_held(run)  # only the placement tells
    assert any(re.match(r"expect\.partition\.(partitions\.\d\.devices|idle_devices)", name) for name in failed_checks(run))


# --------------------------------------------------------------------------- torch's latency helpers


def test_partition_latency_fails_when_torchs_latency_helper_is_broken(run_recipe, monkeypatch):
    from torch.fx.experimental import partitioner_utils

    original = partitioner_utils.get_partition_to_latency_mapping

    def doubled(partitions, mapping):
        return {p: partitioner_utils.PartitionLatency(lat.mem_latency_sec, lat.computer_latency_sec,
                                                      2 * lat.overall_latency_sec)
                for p, lat in original(partitions, mapping).items()}

    monkeypatch.setattr(partitioner_utils, "get_partition_to_latency_mapping", doubled)
    run = run_recipe("partition_latency", "report.pictures=false")
    assert run.summary["status"] == "failed"
    failed = failed_checks(run)
    assert "expect.partition.torch_helpers.agrees" in failed
    assert "expect.partition.torch_helpers.partitions.0.latency" in failed
    assert "expect.partition.partitions.0.latency" not in failed  # fxflow's own figures are intact


def test_partition_latency_fails_when_torchs_critical_path_helper_is_broken(run_recipe, monkeypatch):
    from torch.fx.experimental import partitioner_utils

    original = partitioner_utils.get_latency_of_partitioned_graph
    monkeypatch.setattr(partitioner_utils, "get_latency_of_partitioned_graph", lambda *a: original(*a) + 1)
    run = run_recipe("partition_latency", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert {"expect.partition.torch_helpers.agrees",
            "expect.partition.torch_helpers.critical_path_latency"} <= set(failed_checks(run))


def test_partition_latency_fails_when_fxflows_cost_model_is_broken(run_recipe, monkeypatch):
    from fxflow.partitioning import cost

    original = cost.critical_path_latency
    monkeypatch.setattr(cost, "critical_path_latency", lambda *a, **k: original(*a, **k) + 1)
    run = run_recipe("partition_latency", "report.pictures=false")
    assert run.summary["status"] == "failed"
    failed = failed_checks(run)
    assert {"expect.partition.critical_path_latency", "expect.partition.torch_helpers.agrees"} <= set(failed)
    assert "expect.partition.torch_helpers.critical_path_latency" not in failed  # torch's figure is intact
    assert "critical path" in run.metrics["partition.torch_helpers.differences"][0]


def test_partition_latency_pins_its_partition_count(run_recipe):
    run = run_recipe("partition_latency", "devices=two_gpu", "expect.strict=true", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert "expect.partition.num_partitions" in failed_checks(run)


def test_torch_latency_helpers_need_a_latency_model(run_recipe):
    run = run_recipe("sparse_nn", "transforms.partition.torch_latency_helpers=true")
    assert run.summary["status"] == "error"
    assert "torch_latency_helpers needs a latency_model" in run.summary["error"]["message"]


# --------------------------------------------------------------------------- rewriting tracer


def test_nonstandard_name_runs_torchs_rewriting_tracer(run_recipe, monkeypatch):
    from torch.fx.experimental import rewriter

    def broken(self, root, concrete_args=None):
        raise RuntimeError("torch's RewritingTracer is broken")

    monkeypatch.setattr(rewriter.RewritingTracer, "trace", broken)
    run = run_recipe("traceable_function_with_nonstandard_name")
    assert run.summary["status"] == "error"
    assert "torch's RewritingTracer is broken" in run.summary["error"]["message"]
    assert run_recipe("rewrite_module_level_function").summary["status"] == "passed"  # fxflow's own path


def test_module_level_function_runs_fxflows_rewrite(run_recipe, monkeypatch):
    import fxflow.tracers

    def broken(fn):
        raise RuntimeError("fxflow's rewrite is broken")

    monkeypatch.setattr(fxflow.tracers, "rewrite_function", broken)
    run = run_recipe("rewrite_module_level_function")
    assert run.summary["status"] == "error" and "fxflow's rewrite is broken" in run.summary["error"]["message"]
    assert run_recipe("traceable_function_with_nonstandard_name").summary["status"] == "passed"  # torch's path


# --------------------------------------------------------------------------- catalogues


def _failing_op(monkeypatch, name: str) -> None:
    import fxflow.transforms.normalize_opinfo_catalogue as catalogue

    original = catalogue._check_op

    def check(op, max_samples):
        if op.name == name:
            raise AssertionError(f"{name} broke on purpose")
        return original(op, max_samples)

    monkeypatch.setattr(catalogue, "_check_op", check)


@OPINFO_DB
def test_a_failed_op_fails_the_whole_database_exploration(run_recipe, monkeypatch):
    """An override that widens or moves the slice is an exploration, but the catalogue's own failed
    cases still bind (here a two-op slice stands in for the whole database)."""
    _failing_op(monkeypatch, "abs")
    run = run_recipe("normalize_operator_exhaustive", "transforms.ops.limit=null", 'transforms.ops.include=["^abs$","^add$"]')
    assert run.summary["scenario"]["pinned_figures"] == "shown"
    assert run.summary["status"] == "failed"
    probe = run.check("probe.ops.failed")
    assert probe["binding"] and not probe["passed"] and "abs broke on purpose" in probe["detail"]


@OPINFO_DB
def test_a_failed_op_fails_the_recipe_as_written(run_recipe, monkeypatch):
    _failing_op(monkeypatch, "acos")
    run = run_recipe("normalize_operator_exhaustive")
    assert run.summary["status"] == "failed"
    assert {"probe.ops.failed", "expect.ops.failed", "expect.ops.passed"} <= set(failed_checks(run))


@OPINFO_DB
def test_normalize_operator_exhaustive_pins_how_many_ops_it_covered(run_recipe, monkeypatch):
    import fxflow.transforms.normalize_opinfo_catalogue as catalogue

    original = catalogue.select
    monkeypatch.setattr(catalogue, "select", lambda names, include, limit: original(names, include, limit)[:6])
    run = run_recipe("normalize_operator_exhaustive")
    assert run.summary["status"] == "failed"
    assert {"expect.ops.total", "expect.ops.checked"} <= set(failed_checks(run))
    assert run.check("probe.ops.failed")["passed"]  # nothing failed: only the coverage pin tells


def test_a_failed_module_case_binds_in_an_exploration(run_recipe, monkeypatch):
    import fxflow.transforms.normalize_modules_catalogue as catalogue

    def broken(case):
        raise AssertionError("broke on purpose")

    monkeypatch.setattr(catalogue, "_check_case", broken)
    run = run_recipe("normalize_modules_exhaustive", "transforms.modules.limit=3")
    assert run.summary["scenario"]["pinned_figures"] == "shown"
    assert run.summary["status"] == "failed"
    assert not run.check("probe.modules.failed")["passed"]


def test_probe_failures_read_only_transforms_that_declare_them():
    class Catalogue:
        failures_fact = "failed"

    facts = {"ops": {"failed": 2, "total": 9, "failures": ["a: x", "b: y"]}, "other": {"failed": 5}}
    (check,) = check_probe_failures({"ops": Catalogue(), "other": object()}, facts)
    assert check.name == "probe.ops.failed" and not check.passed and check.binding
    assert "2 of the 9" in check.detail and "a: x" in check.detail
    facts["ops"]["failed"] = 0
    assert check_probe_failures({"ops": Catalogue()}, facts)[0].passed


# --------------------------------------------------------------------------- optimize_for_inference


def test_keep_dropout_fails_when_the_dropout_is_removed(run_recipe, monkeypatch):
    from fxflow.transforms.optimize_for_inference import PassConfig

    original = PassConfig.for_torch
    monkeypatch.setattr(PassConfig, "for_torch", lambda self: {**original(self), "remove_dropout": True})
    run = run_recipe("optimize_for_inference_cpu_keep_dropout", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert equivalence_held(run)  # eval-mode Dropout is the identity: only the pin tells
    assert "expect.optimize.after.dropout" in failed_checks(run)


def test_every_in_repo_classifier_has_its_own_binding_recipe():
    from fxflow.models.resnet import FACTORIES

    recipes = {name.removeprefix("optimize_for_inference_cpu_") for name in recipe_files()
               if name.startswith("optimize_for_inference_cpu_") and name != "optimize_for_inference_cpu_keep_dropout"}
    assert recipes == set(FACTORIES)
    for arch in FACTORIES:
        recipe = OmegaConf.load(recipe_files()[f"optimize_for_inference_cpu_{arch}"])
        assert f"override /model: {arch}" in OmegaConf.to_yaml(recipe.defaults)
        optimize = OmegaConf.to_container(recipe.expect.metrics.optimize)
        pinned = [optimize["before"]["batchnorm"], optimize["after"]["mkldnn"], optimize["after"]["batchnorm"]]
        assert all(isinstance(value, int) for value in pinned), f"{arch}: exact counts, not ranges"
        assert recipe.reproduces == ["test_optimize_for_inference_cpu_torchvision"]


def test_an_in_repo_classifier_recipe_fails_when_fusion_is_skipped(run_recipe, monkeypatch):
    from fxflow.transforms.optimize_for_inference import PassConfig

    original = PassConfig.for_torch
    monkeypatch.setattr(PassConfig, "for_torch", lambda self: {**original(self), "conv_bn_fuse": False})
    run = run_recipe("optimize_for_inference_cpu_resnet18", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert "expect.optimize.after.mkldnn" in failed_checks(run)  # BatchNorms became MKLDNN layers of their own


# --------------------------------------------------------------------------- type_matches


SHOULD_MATCH = [  # torch's test_type_matches, as written there
    (int, int), (numbers.Number, int), (numbers.Number, float), (int, type(torch.float)),
    (Union[int, float], int), (Union[int, float], float), (List[int], int),
    (List[int], create_type_hint([int, int])), (List[int], create_type_hint((int, int))),
    (List[torch.Tensor], create_type_hint([torch.Tensor, torch.Tensor])),
    (List[torch.Tensor], create_type_hint([torch.nn.Parameter, torch.nn.Parameter])),
    (torch.Tensor, torch.nn.Parameter),
    (List[torch.Tensor], create_type_hint([torch.nn.Parameter, torch.Tensor])),
    (List[torch.Tensor], create_type_hint([torch.Tensor, torch.nn.Parameter])),
    (List[torch.Tensor], create_type_hint((torch.Tensor, torch.Tensor))),
    (List[torch.Tensor], create_type_hint((torch.nn.Parameter, torch.nn.Parameter))),
    (torch.Tensor, torch.nn.Parameter),
    (List[torch.Tensor], create_type_hint((torch.nn.Parameter, torch.Tensor))),
    (List[torch.Tensor], create_type_hint((torch.Tensor, torch.nn.Parameter))),
    (Optional[List[torch.Tensor]], List[torch.Tensor]), (Optional[List[int]], List[int]),
]
SHOULD_FAIL = [(int, float), (Union[int, float], str), (List[torch.Tensor], List[int])]


def test_type_matches_pins_the_torch_tests_literal_types():
    from fxflow.transforms.type_matches import type_text
    from fxflow.type_expressions import parse_type

    recipe = OmegaConf.load(recipe_files()["type_matches"])
    for stage, literal in (("should_match", SHOULD_MATCH), ("should_fail", SHOULD_FAIL)):
        words = [f"{type_text(s)} <- {type_text(a)}" for s, a in literal]
        assert list(recipe.expect.metrics[stage].parsed) == words
        pairs = [tuple(pair) for pair in recipe.transforms[stage].pairs]
        assert [(parse_type(s), parse_type(a)) for s, a in pairs] == literal


def test_type_matches_fails_when_the_parser_drops_type_arguments(run_recipe, monkeypatch):
    import typing

    import fxflow.transforms.type_matches as module

    original = module.parse_type
    monkeypatch.setattr(module, "parse_type", lambda text: typing.get_origin(original(text)) or original(text))
    run = run_recipe("type_matches")
    assert run.summary["status"] == "failed"
    assert {"expect.should_match.parsed", "expect.should_fail.parsed"} <= set(failed_checks(run))


# --------------------------------------------------------------------------- to_folder


def test_to_folder_compares_in_training_mode(run_recipe, monkeypatch):
    """The re-imported module put in eval mode normalizes with running statistics; compared in
    training mode, as the torch test compares, that shows (in eval mode it would not)."""
    from fxflow.transforms.export_folder import ExportFolder

    original = ExportFolder.apply
    monkeypatch.setattr(ExportFolder, "apply", lambda self, gm, ctx: original(self, gm, ctx).eval())
    run = run_recipe("to_folder")
    assert run.metrics["build.training"] is True
    assert run.summary["status"] == "failed"
    assert "equivalence.export" in failed_checks(run)


# --------------------------------------------------------------------------- check lines


@pytest.mark.parametrize("passed", [True, False])
@pytest.mark.parametrize("expected, words", [({"gt": 0}, "above 0"), ({"ge": 3}, "at least 3"),
                                             ({"len": 21}, "with length 21"), ({"gt": 0, "le": 9}, "above 0 and at most 9")])
def test_a_range_check_prints_as_a_range(expected, words, passed):
    line = describe(Check("expect.ops.passed", "expectation", passed, expected=expected, actual=4, detail="x"))
    assert line == f"ops.passed is 4; the recipe's check: {words}"


def test_a_pinned_value_prints_as_a_pin():
    line = describe(Check("expect.ops.failed", "expectation", True, expected=0, actual=0, detail="x"))
    assert line == "ops.failed is 0, as the recipe pins"


def test_the_readmes_merge_matmul_comments_say_what_happens(run_recipe):
    lines = [line for line in README.splitlines() if "recipe=merge_matmul model=chained_matmuls" in line]
    assert len(lines) == 2
    for line in lines:
        command, comment = line.split("#", 1)
        overrides = command.split("recipe=merge_matmul", 1)[1].split()
        run = run_recipe("merge_matmul", *overrides)
        assert comment.strip().startswith(run.summary["status"]), (line, run.summary["status"])
