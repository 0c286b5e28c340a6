"""Every test of torch's test_fx_experimental.py (the behaviour fxflow reproduces) has a recipe
that says so in `reproduces:`, and the README's torch test -> recipe table lists it."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from fxflow.recipes import recipe_files

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

TORCH_TESTS = {
    # partitioning
    "test_find_single_partition", "test_lack_of_devices", "test_large_node_error", "test_partition_node_manipulation",
    "test_size_based_partition", "test_partition_device_mapping", "test_sparse_nn_partition", "test_partition_latency",
    "test_cost_aware_partition", "test_aot_based_partition", "test_replace_target_nodes_with", "test_saturate_host",
    # tracing, split, export
    "test_call_to_assert_no_msg", "test_meta_tracer", "test_call_to_assert_with_msg", "test_call_to_assert_with_empty_msg",
    "test_call_to_assert_with_multiline_message", "test_subgraph_creation", "test_split_module_dead_code",
    "test_split_module_kwargs_expansion", "test_subgraph_trivial_resnet", "test_split_module_default_arg",
    "test_subgraph_uniquename", "test_split_qualname_mapping", "test_traceable_function_with_nonstandard_name",
    "test_to_folder", "test_fetch",
    # fusion, inference optimization, normalization, types
    "test_conv_bn_fusion", "test_conv_bn_fusion_not_running_state", "test_conv_bn_fusion_mixed_dtype",
    "test_optimize_for_inference_cpu", "test_optimize_for_inference_cpu_torchvision", "test_normalize_binary_operators",
    "test_normalize_args", "test_normalize_args_preserve_meta", "test_normalize_args_perserve_type",
    "test_normalize_quantized_eb", "test_normalize_args_op_overload", "test_normalize_modules_exhaustive",
    "test_normalize_operator_exhaustive", "test_annotate_returns_with_schema", "test_annotate_getitem_node",
    "test_type_matches",
}


def test_torch_has_43_tests_here():
    assert len(TORCH_TESTS) == 43


def test_every_torch_test_has_a_recipe():
    covered = {name for path in recipe_files().values() for name in OmegaConf.load(path).get("reproduces", [])}
    assert not covered - TORCH_TESTS, f"recipes reproduce tests torch does not have: {covered - TORCH_TESTS}"
    assert not TORCH_TESTS - covered, f"torch tests without a recipe: {sorted(TORCH_TESTS - covered)}"


def test_the_readme_table_lists_every_torch_test_with_its_recipe():
    by_test: dict[str, set[str]] = {}
    for name, path in recipe_files().items():
        for test in OmegaConf.load(path).get("reproduces", []):
            by_test.setdefault(test, set()).add(name)
    for test, recipes in by_test.items():
        rows = [line for line in README.splitlines() if line.startswith("|") and f"`{test}`" in line]
        assert rows, f"{test} is not in the README's torch test -> recipe table"
        assert any(f"`{recipe}`" in row for row in rows for recipe in recipes), (test, recipes)
