"""Every shipped recipe composes, validates, runs in-process, and shows the figures its torch test asserts."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from fxflow.recipes import recipe_files

RECIPES = sorted(recipe_files())
# Recipes that start worker processes: run (and checked more closely) in tests/test_distributed_recipes.py.
PROCESS_RECIPES = {name for name in RECIPES if name.startswith("distributed_")}
# Recipes whose point is scale (10,000 nodes, ~6 s a run): benchmarks/partition_cli.py times them
# through the command; here they validate, and partition_bench runs their scenario at 514 nodes.
BENCHMARK_RECIPES = {"partition_bench_10k"}

# The figures test_fx_experimental.py asserts, by recipe, as recorded metric names.
TORCH_TEST_FIGURES = {
    "find_single_partition": {"partition.partitions.0.logical_device_ids": [1]},
    "partition_node_manipulation": {"partition.partitions.0.used_mem_bytes": 112,
                                    "partition.what_if_removed.add_2.used_mem_bytes_after": 80},
    "size_based_partition": {f"partition.partitions.{i}.logical_device_ids": [i] for i in range(3)},
    "partition_device_mapping": {"partition.partitions.0.logical_device_ids": [0],
                                 "partition.partitions.1.logical_device_ids": [1],
                                 "partition.partitions.2.logical_device_ids": [0]},
    "sparse_nn": {"partition.graph_node_count": 24, "partition.idle_devices": ["dev_2"]},
    "partition_latency": {"partition.partitions.0.latency": [128.0, 80.0, 160.0],
                          "partition.partitions.1.latency": [16.0, 32.0, 32.0],
                          "partition.critical_path_latency": 208.0,
                          "partition.torch_helpers.critical_path_latency": 208.0},
    "cost_aware_partition": {"partition.critical_path_latency": 160.0,
                             "partition.torch_helpers.critical_path_latency": 160.0},
    "aot_based_partition": {"partition.partitions.0.used_mem_bytes": 48, "partition.partitions.1.used_mem_bytes": 48,
                            "partition.partitions.0.logical_device_ids": [0], "partition.partitions.1.logical_device_ids": [0]},
    "saturate_host": {"partition.num_partitions": 2, "partition.partitions.0.logical_device_ids": [0, 4],
                      "partition.partitions.1.logical_device_ids": [1, 2]},
    "replace_target_nodes_with": {"replace.replaced": 1},
    # tracing: the assert becomes one torch._assert node; the traced branch follows the batch size
    **{name: {"trace.graph.target_counts.call_function:torch._assert": 1, "trace.graph.lint": "ok"}
       for name in ("call_to_assert_no_msg", "call_to_assert_with_msg", "call_to_assert_with_empty_msg",
                    "call_to_assert_with_multiline_message")},
    "traceable_function_with_nonstandard_name": {"build.kind": "function",
                                                 "trace.rewriter": "torch.fx.experimental.rewriter.RewritingTracer",
                                                 "trace.graph.targets": ["call_function:torch.relu"]},
    "rewrite_module_level_function": {"trace.rewriter": "fxflow.tracers.rewrite_function",
                                      "trace.graph.targets": ["call_function:torch.relu"]},
    "meta_tracer_relu": {"trace.graph.target_counts.call_function:torch.relu": 1,
                         "pickle.graph.target_counts.call_function:torch.relu": 1},
    "meta_tracer_sigmoid": {"trace.graph.target_counts.call_function:torch.sigmoid": 1,
                            "pickle.graph.target_counts.call_function:torch.sigmoid": 1},
    # split_module: submodules in call order and what the torch tests assert about them
    "subgraph_creation": {"split.submodules": ["submod_0", "submod_1", "submod_2"], "split.meta_kept": True,
                          "split.all_graph_modules": True},
    "split_module_dead_code": {"split.submodules": ["submod_2", "submod_1"], "split.assignment.mul": 1},
    "split_module_kwargs_expansion": {"split.submodules": ["submod_1"], "split.graph.placeholders": ["x", "_kwargs"]},
    "subgraph_trivial_resnet": {"split.submodules": ["submod_0"], "split.node_counts.submod_0": 71},
    "split_module_default_arg": {"split.submodules": ["submod_0"]},
    "subgraph_uniquename": {"split.submodules": ["submod_0", "submod_1"], "split.assignment.add": 0},
    "split_qualname_mapping": {"split.qualname_map_keys": ["submod_1.lin", "submod_2.lin"],
                               "split.qualname_map.submod_1.lin": "lin", "split.qualname_map.submod_2.lin": "lin"},
    # export and lowering: the re-imported package is the stage's output; Conv2d 9 keys, BatchNorm2d 6
    "to_folder": {"export.pickled_children": ["seq"]},
    "fetch": {"lower.nodes.conv.key_count": 9, "lower.nodes.bn.key_count": 6},
    # Fusion, inference optimization, normalization, types.
    "conv_bn_fusion": {"fuse.fused": 20, "fuse.after.batchnorm": 0},
    "conv_bn_fusion_not_running_state": {"fuse.fused": 0, "fuse.after.batchnorm": 1},
    "conv_bn_fusion_mixed_dtype": {"fuse.fused": 1, "fuse.after.batchnorm": 0},
    "optimize_for_inference_cpu": {"optimize.after.mkldnn": 20, "optimize.after.batchnorm": 0,
                                   "optimize.layout.to_mkldnn": 2, "optimize.layout.to_dense": 1},
    "optimize_for_inference_cpu_keep_dropout": {"optimize.after.dropout": 20, "optimize.after.batchnorm": 0},
    **{f"optimize_for_inference_cpu_{arch}": {"optimize.after.batchnorm": 0, "optimize.after.mkldnn": convs}
       for arch, convs in (("resnet18", 20), ("resnet50", 53), ("resnext50_32x4d", 53))},
    "normalize_binary_operators": {"normalize.torch_operators_before": 24, "normalize.remaining": []},
    "normalize_args": {"normalize_args.with_positional_args": ["call_function:operator.add"]},
    "normalize_args_preserve_meta": {"meta.values.call_function:torch.add": [7]},
    "normalize_args_perserve_type": {"normalize_args.placeholder_types.a": "typing.List[torch.Tensor]"},
    "normalize_quantized_eb": {"eb.args": 0, "eb.kwargs": [
        "weight", "indices", "offsets", "scale_grad_by_freq", "mode", "pruned_weights", "per_sample_weights",
        "compressed_indices_mapping", "include_last_offset"]},
    "normalize_args_op_overload": {f"{stage}.kwargs_from.{name}": where for stage in ("overload", "packet")
                                   for name, where in (("input", "args.0"), ("the_template", "kwargs.the_template"))},
    "normalize_modules_exhaustive": {"modules.passed": 129, "modules.failed": 0},
    "normalize_operator_exhaustive": {"ops.failed": 0, "ops.total": 12, "ops.passed": 4},
    "annotate_returns_with_schema": {"annotate.untyped": ["call_function:operator.add", "call_function:torch.flatten",
                                                          "call_module:maxpool", "output:output", "placeholder:x"]},
    "annotate_returns_with_schema_functional": {"annotate.untyped_python": [
        "call_function:torch.nn.functional.max_pool2d", "output:output", "placeholder:x"]},
    "annotate_getitem_node": {"annotate_getitem.typed_before": 0, "annotate_getitem.typed_after": 3},
    "type_matches": {"should_match.unmatched": [], "should_fail.matched": []},
    "merge_matmul": {"merge.matmuls_before": 2, "merge.matmuls_after": 1},
    # beyond the torch tests: fxflow's partitioner beside torch's on one scenario
    "partition_bench_torch": {"partition.critical_path_latency": 323200.0, "partition.num_partitions": 4},
    "partition_bench": {"partition.backend": "fxflow", "partition.idle_devices": []},
}
EXPECTED_REFUSALS = {"lack_of_devices": "enough memory", "large_node_error": "too large to fit any device",
                     "conv_bn_fusion_train_mode": "Fusion only for eval"}
# Recipes whose traced module and eager model must both raise on other inputs: the message pattern.
EXPECTED_RAISES = {"call_to_assert_no_msg": "^$", "call_to_assert_with_msg": "^test message$",
                   "call_to_assert_with_empty_msg": "^$",
                   "call_to_assert_with_multiline_message": "^\\nAn error message with\\nterrible spacing\\n"}


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_expects_something_and_says_what_it_is(name):
    """Composing and validating every recipe is `fxflow validate --all` (tests/test_readme.py, CI)."""
    recipe = OmegaConf.load(recipe_files()[name])
    assert recipe.recipe == name and recipe.description
    assert recipe.get("expect", {}).get("metrics") or recipe.get("expect", {}).get("error"), "a recipe must expect something"


def test_every_recipe_has_its_figures_listed_here():
    assert set(TORCH_TEST_FIGURES) | set(EXPECTED_REFUSALS) == set(RECIPES) - PROCESS_RECIPES - BENCHMARK_RECIPES


@pytest.mark.parametrize("name", sorted(set(RECIPES) - PROCESS_RECIPES - BENCHMARK_RECIPES))
def test_recipe_runs_with_its_torch_test_figures(name, run_recipe):
    run = run_recipe(name, "report.pictures=false")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    assert run.summary["recipe"] == name
    for metric, value in TORCH_TEST_FIGURES.get(name, {}).items():
        assert run.metrics[metric] == value, metric
    if name in EXPECTED_REFUSALS:
        refusal = run.check("expect.error")
        assert refusal["passed"] and EXPECTED_REFUSALS[name] in refusal["actual"]["message"]
    if name in EXPECTED_RAISES:
        raised = run.check("raises.trace")
        assert raised["passed"] and raised["expected"]["match"] == EXPECTED_RAISES[name]
        assert [seen["type"] for seen in raised["actual"].values()] == ["AssertionError"] * 2  # traced and eager
    equivalence = [c for c in run.summary["checks"] if c["name"].startswith("equivalence.")]
    assert equivalence and all(c["passed"] for c in equivalence)


def test_recipe_fails_when_its_figure_is_wrong(run_recipe):
    run = run_recipe("partition_latency", "expect.metrics.partition.critical_path_latency=209.0")
    assert run.summary["status"] == "failed"
    bad = run.check("expect.partition.critical_path_latency")
    assert not bad["passed"] and bad["actual"] == 208.0


def test_expected_refusal_that_does_not_happen_fails_when_strict(run_recipe):
    run = run_recipe("lack_of_devices", "devices=three_gpu", "expect.strict=true", "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert not run.check("expect.error")["passed"] and run.check("expect.error")["binding"]


def test_latency_model_is_swappable_by_group(run_recipe):
    run = run_recipe("partition_latency", "latency@transforms.partition.latency_model=size_unit", "~expect.metrics")
    assert run.summary["status"] == "passed", run.summary["checks"]
    assert run.metrics["partition.partitions.1.latency"] == [16.0, 1.0, 16.0]


def test_replacing_targets_without_the_new_reference_fails(run_recipe):
    """The transform really changes the computation: against the eager (adding) model it must fail."""
    run = run_recipe("replace_target_nodes_with", "equivalence.reference=null")
    assert run.summary["status"] == "failed"
    assert not run.check("equivalence.replace")["passed"]
