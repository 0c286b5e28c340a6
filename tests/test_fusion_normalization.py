"""Fusion, inference optimization, normalization, typing and merge_matmul: the recipes fail when
their step silently does nothing, the same steps hold (or refuse) on held-out models, and bad
parameters stop at validation with a message naming the key.

The recipes' own figures are checked with every other recipe in test_recipes.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from fxflow.config.errors import ConfigError
from fxflow.pipeline import run_job
from fxflow.plan import plan_run
from fxflow.type_expressions import TypeExpressionError, parse_type

pytestmark = pytest.mark.usefixtures("trusted_fixtures")  # models and transforms from tests.fixtures_models

PASSTHROUGH = "tests.fixtures_models.optimize.Passthrough"
FIX = "tests.fixtures_models.optimize"


def replaced_by_passthrough(stage: str) -> list[str]:
    """Overrides that swap a recipe's step for one that returns its input and records nothing."""
    return [f"~transforms.{stage}", f"+transforms.{stage}={{_target_:{PASSTHROUGH}}}"]


def failed_checks(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.summary["checks"] if not c["passed"]}


# --- a recipe fails when its step silently does nothing ---------------------------------------

def test_fusion_recipe_fails_when_fuse_does_nothing(run_recipe):
    run = run_recipe("conv_bn_fusion_mixed_dtype", "report.pictures=false", "expect.strict=true",
                     *replaced_by_passthrough("fuse"))
    assert run.summary["status"] == "failed"
    failed = failed_checks(run)
    assert "call_module:torch.nn.BatchNorm2d" in failed["expect.fuse.graph.targets"]["actual"]  # BatchNorm still there
    assert {"expect.fuse.fused", "expect.fuse.after.batchnorm"} <= set(failed)
    assert run.check("equivalence.fuse")["passed"]  # doing nothing computes the same: only the figures catch it


def test_fusion_recipe_without_its_step_is_refused(run_recipe):
    run = run_recipe("conv_bn_fusion", "~transforms.fuse")
    assert run.summary["status"] == "error"
    assert "expect.metrics.fuse" in run.summary["error"]["message"]


@pytest.mark.parametrize("recipe,stage,catching", [
    ("normalize_binary_operators", "normalize", "expect.normalize.graph.targets"),
    ("normalize_args_preserve_meta", "normalize_args", "expect.normalize_args.positional_after"),
    ("normalize_args_perserve_type", "normalize_args", "expect.normalize_args.placeholder_types.a"),
    ("annotate_getitem_node", "annotate_getitem", "expect.annotate_getitem.typed_after"),
])
def test_normalization_recipes_fail_when_the_step_does_nothing(run_recipe, recipe, stage, catching):
    run = run_recipe(recipe, "report.pictures=false", "expect.strict=true", *replaced_by_passthrough(stage))
    assert run.summary["status"] == "failed"
    assert catching in failed_checks(run)
    if recipe == "normalize_binary_operators":  # the check names what was left in place
        left = set(failed_checks(run)[catching]["actual"])
        assert {"call_function:torch.add", "call_function:torch.floor_divide", "call_function:torch.ge"} <= left




# --- held-out models ---------------------------------------------------------------------------

def held_out(tmp_path: Path, module: dict, inputs: dict, transforms: dict, expect: dict | None = None,
             tracer: str = "fxflow.tracers.SymbolicTracer", **tracer_args) -> dict:
    cfg = {"recipe": "held_out", "model": {"module": module, "inputs": inputs},
           "tracer": {"_target_": tracer, **tracer_args}, "transforms": transforms,
           "report": {"pictures": False}, "expect": {"metrics": expect or {}}}
    run_job(cfg, tmp_path / "run", [])
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def passed_and_proven(summary: dict) -> None:
    assert summary["status"] == "passed", summary.get("error") or summary["checks"]
    assert [c for c in summary["checks"] if c["kind"] == "equivalence" and c["passed"]]


FUSE = {"fuse": {"_target_": "fxflow.transforms.fuse.FuseConvBn"}}
MERGE = {"merge": {"_target_": "fxflow.transforms.merge_matmul.MergeMatmul"}}


def test_fuse_folds_linear_and_batchnorm1d(tmp_path):
    summary = held_out(tmp_path, {"_target_": f"{FIX}.LinearBatchNorm"}, {"x": {"shape": [5, 4], "dist": "randn"}},
                       FUSE, {"fuse": {"fused": 1, "after": {"batchnorm": 0, "linear": 1}}})
    passed_and_proven(summary)


def test_fuse_leaves_a_convolution_with_other_users(tmp_path):
    summary = held_out(tmp_path, {"_target_": f"{FIX}.ConvOutputUsedTwice"}, {"x": {"shape": [1, 3, 8, 8], "dist": "randn"}},
                       FUSE, {"fuse": {"fused": 0, "after": {"batchnorm": 1}}})
    passed_and_proven(summary)


MATMUL_INPUTS = {
    "SharedWeightMatmuls": {"x": {"shape": [3, 4]}, "y": {"shape": [2, 4]}},
    "DistinctRhsMatmuls": {"x": {"shape": [3, 4]}, "y": {"shape": [5, 4]}, "r1": {"shape": [4, 6]}, "r2": {"shape": [4, 6]}},
    "ChainedMatmuls": {"x": {"shape": [3, 4]}, "rhs": {"shape": [4, 4]}},
}


@pytest.mark.parametrize("model,merged", [("SharedWeightMatmuls", 1), ("DistinctRhsMatmuls", 0), ("ChainedMatmuls", 0)])
def test_merge_matmul_merges_only_independent_products_of_one_rhs(tmp_path, model, merged):
    summary = held_out(tmp_path, {"_target_": f"fxflow.models.matmul_examples.{model}"}, MATMUL_INPUTS[model], MERGE,
                       {"merge": {"matmuls_before": 2, "merged": merged, "matmuls_after": 2 - merged}})
    passed_and_proven(summary)


def test_merge_recipe_fails_clearly_on_a_pattern_that_must_not_merge(run_recipe):
    run = run_recipe("merge_matmul", "report.pictures=false", "model=chained_matmuls", "expect.strict=true")
    assert run.summary["status"] == "failed"
    merged = failed_checks(run)["expect.merge.merged"]
    assert merged["actual"] == 0 and "expected 1" in merged["detail"]
    assert run.check("equivalence.merge")["passed"]


def test_normalize_operators_dropping_a_keyword_is_caught_by_equivalence(tmp_path):
    """torch rewrites torch.add(x, y, alpha=2) to operator.add(x, y): the figures alone would pass,
    the comparison with the model does not."""
    summary = held_out(tmp_path, {"_target_": f"{FIX}.AddWithAlpha"}, {"x": {"shape": [3]}, "y": {"shape": [3]}},
                       {"normalize": {"_target_": "fxflow.transforms.normalize_operators.NormalizeOperators"}},
                       {"normalize": {"torch_operators_before": 2, "torch_operators_after": 0}})
    assert summary["status"] == "failed"
    failed = [c["name"] for c in summary["checks"] if not c["passed"]]
    assert failed == ["equivalence.normalize"]


def test_normalize_args_on_a_functional_trace_of_another_model(tmp_path):
    summary = held_out(tmp_path, {"_target_": "fxflow.models.optimization_examples.ConvBnReluBranches", "depth": 2},
                       {"x": {"shape": [1, 3, 8, 8], "dist": "randn"}},
                       {"normalize_args": {"_target_": "fxflow.transforms.normalize_args.NormalizeArgs", "shape_prop": True}},
                       {"normalize_args": {"positional_before": 13, "with_positional_args": ["call_function:operator.add"]}},
                       tracer="fxflow.tracers.FunctionalTracer", leaf_modules=["torch.nn.BatchNorm2d"])
    passed_and_proven(summary)


@pytest.mark.parametrize("remove_dropout,left", [(True, 0), (False, 4)])
def test_optimize_for_inference_removes_dropout_only_when_asked(run_recipe, remove_dropout, left):
    run = run_recipe("optimize_for_inference_cpu", "report.pictures=false", "model.module.depth=2",
                     "model.module.dropout=0.25", f"transforms.optimize.pass_config.remove_dropout={remove_dropout}",
                     "transforms.optimize.timing_calls=1", "~expect.metrics")
    assert run.summary["status"] == "passed", run.summary["checks"]
    assert run.metrics["optimize.before.dropout"] == 4 and run.metrics["optimize.after.dropout"] == left
    assert {"optimize.speed.original_ms", "optimize.speed.optimized_ms"} <= set(run.metrics)  # reported, not judged


def test_optimize_for_inference_without_the_layout_pass(run_recipe):
    run = run_recipe("optimize_for_inference_cpu", "report.pictures=false",
                     "transforms.optimize.pass_config.mkldnn_layout_optimize=false", "transforms.optimize.timing_calls=0",
                     "~expect.metrics")
    assert run.summary["status"] == "passed", run.summary["checks"]
    assert run.metrics["optimize.after.mkldnn"] == 0 and run.metrics["optimize.after.batchnorm"] == 0
    assert run.metrics["optimize.layout.to_mkldnn"] == run.metrics["optimize.layout.to_dense"] == 0
    assert not any(name.startswith("optimize.speed") for name in run.metrics)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here")
def test_torchvision_only_architecture_is_skipped_without_torchvision(run_recipe):
    run = run_recipe("optimize_for_inference_cpu_resnet18", "model=densenet121")
    assert run.summary["status"] == "skipped"
    assert "torchvision" in run.summary["skipped"]


def test_catalogue_without_torch_testing_internal_is_skipped(run_recipe, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.testing._internal.common_nn", None)  # import now fails
    run = run_recipe("normalize_modules_exhaustive")
    assert run.summary["status"] == "skipped"
    assert "common_nn" in run.summary["skipped"] and "fxflow[catalogues]" in run.summary["skipped"]


# --- bad parameters stop at validation -----------------------------------------------------------

def problems(name: str, transform: str, **params) -> dict[str, str]:
    """Validate a config holding one transform built from conf/transform/<transform>.yaml's
    `_target_` with `params`; the problems found, by dotted path."""
    from omegaconf import OmegaConf

    from fxflow.paths import conf_dir

    target = OmegaConf.load(conf_dir() / "transform" / f"{transform}.yaml")["_target_"]
    cfg = {"recipe": "bad", "model": {"module": {"_target_": "torch.nn.Identity"},
                                      "inputs": {"input": {"shape": [2]}}},
           "tracer": {"_target_": "fxflow.tracers.SymbolicTracer"}, "transforms": {name: {"_target_": target, **params}}}
    with pytest.raises(ConfigError) as info:
        plan_run(cfg)
    return {p.path: p.render() for p in info.value.problems}


@pytest.mark.parametrize("transform,params,path,words", [
    ("optimize_for_inference", {"pass_config": {"remove_dropout": "maybe"}}, "pass_config.remove_dropout", "bool"),
    ("optimize_for_inference", {"pass_config": {"mkldnn_layout_optimize": {"heuristic": "gen_mkl_autotuner"}}},
     "pass_config.mkldnn_layout_optimize", "use_mkl_length"),
    ("optimize_for_inference", {"pass_config": {"conv_bn_fusion": True}}, "pass_config.conv_bn_fusion", "conv_bn_fuse"),
    ("type_matches", {"pairs": [["int", "os.system"]]}, "pairs", "os.system"),
    ("normalize_function", {"target": "os.system"}, "target", "torch operator"),
    ("normalize_modules_catalogue", {"limit": 0}, "limit", "greater than 0"),
    ("normalize_args", {"shape_prop": "sometimes"}, "shape_prop", "bool"),
    ("tag_nodes", {"target": "call_function:torch.add", "key": "k"}, "value", "required"),
])
def test_bad_parameters_are_refused_naming_the_key(transform, params, path, words):
    found = problems("step", transform, **params)
    assert any(p.startswith(f"transforms.step.{path}") for p in found), found
    assert any(words in text for text in found.values()), found


# --- type expressions are parsed, never evaluated --------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("List[int]", "typing.List[int]"),
    ("Optional[List[torch.Tensor]]", "typing.Optional[typing.List[torch.Tensor]]"),
    ("create_type_hint([int, int])", "list[int]"),
    ("create_type_hint((torch.nn.Parameter, torch.Tensor))", "tuple[torch.Tensor, ...]"),
    ("type(torch.float)", "<class 'torch.dtype'>"),
])
def test_type_expressions(text, expected):
    assert str(parse_type(text)) == expected


@pytest.mark.parametrize("text", ["__import__('os')", "os.system", "List[int](1)", "type(os)", "torch.load", "1 +"])
def test_type_expressions_refuse_anything_else(text):
    with pytest.raises(TypeExpressionError):
        parse_type(text)
