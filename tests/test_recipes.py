"""Every recipe fxflow finds runs in-process and holds the figures it pins (its torch test's):
recipes are discovered, so a new recipe needs no entry here."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import HF_MODELS, OPINFO_DB
from fxflow.checks.expectations import flatten_expectations
from fxflow.recipes import recipe_files

RECIPES = sorted(recipe_files())
# Recipes that start worker processes: run (and checked more closely) in tests/test_distributed_recipes.py.
PROCESS_RECIPES = {name for name in RECIPES if name.startswith("distributed_")}
# Recipes whose point is scale (10,000 nodes, ~6 s a run): benchmarks/partition_cli.py times them
# through the command; here they validate, and partition_bench runs their scenario at 514 nodes.
BENCHMARK_RECIPES = {"partition_bench_10k", "partition_bench_100k"}


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_expects_something_and_says_what_it_is(name):
    """Composing and validating every recipe is `fxflow validate --all` (tests/test_readme.py, CI)."""
    recipe = OmegaConf.load(recipe_files()[name])
    assert recipe.recipe == name and recipe.description
    assert recipe.get("expect", {}).get("metrics") or recipe.get("expect", {}).get("error"), "a recipe must expect something"


def _scheduled(name: str) -> object:
    """A recipe that loads torch's OpInfo database or transformers runs on the worker that holds it
    (conftest.OPINFO_DB, conftest.HF_MODELS)."""
    text = recipe_files()[name].read_text()
    if "normalize_opinfo_catalogue" in text:
        return pytest.param(name, marks=OPINFO_DB)
    return pytest.param(name, marks=HF_MODELS) if name.startswith("partition_hf_") else name


@pytest.mark.parametrize("name", [_scheduled(n) for n in sorted(set(RECIPES) - PROCESS_RECIPES - BENCHMARK_RECIPES)])
def test_recipe_runs_and_holds_its_own_figures(name, run_recipe):
    """The figures a recipe pins (its torch test's) live in the recipe alone: a run as written
    passes only when every one of them holds, each as a binding check of its own."""
    recipe = OmegaConf.to_container(OmegaConf.load(recipe_files()[name]))
    expect = recipe.get("expect") or {}
    run = run_recipe(name, "report.pictures=false")
    if run.summary["status"] == "skipped" and not name.startswith("partition_hf_"):  # transformers is in the test extra
        pytest.skip(f"{name}: {run.summary['skipped']}")
    assert run.summary["status"] == "passed", run.summary["error"] or run.summary["checks"]
    assert run.summary["recipe"] == name
    if name.startswith("partition_hf_"):  # the record says which transformers built the model
        import transformers

        assert run.summary["versions"]["transformers"] == transformers.__version__
    checks = {c["name"]: c for c in run.summary["checks"]}
    for key in flatten_expectations(expect.get("metrics") or {}):
        assert checks[f"expect.{key}"]["passed"] and checks[f"expect.{key}"]["binding"], key
    if expect.get("error"):
        assert checks["expect.error"]["passed"] and checks["expect.error"]["binding"]
    for check in checks.values():
        if check["name"].startswith("raises."):  # the traced module and the eager model both raised
            assert check["passed"] and [seen["type"] for seen in check["actual"].values()] == [check["expected"]["type"]] * 2
    equivalence = [c for c in checks.values() if c["name"].startswith("equivalence.")]
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
