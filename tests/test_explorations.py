"""A recipe as written is held to its pinned figures; an exploration shows them and lets equivalence
decide, unless expect.strict; the record names the model actually built."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fxflow.checks.scenario import scenario_changes
from fxflow.recipes import recipe_files


def test_only_overrides_outside_checking_and_writing_change_the_scenario():
    assert scenario_changes(["recipe=x", "~expect", "expect.strict=true", "report.pictures=false",
                             "equivalence.fresh_inputs=5", "hydra/launcher=joblib", "hydra.sweep.dir=d",
                             "sweep.fail_fast=true"]) == []
    changing = ["devices=two_gpu", "latency@transforms.partition.latency_model=size_unit", "seed=3",
                "+model.inputs.z={shape:[2]}", "transforms.partition.mode=cost_aware", "tracer=meta"]
    assert scenario_changes(changing) == changing


def test_exploration_shows_pinned_figures_and_passes_on_equivalence(run_recipe):
    run = run_recipe("partition_latency", "transforms.partition.mode=cost_aware", "report.pictures=false")
    assert run.summary["status"] == "passed"
    assert run.summary["scenario"] == {"changed_by": ["transforms.partition.mode=cost_aware"], "pinned_figures": "shown"}
    pinned = run.check("expect.partition.critical_path_latency")
    assert pinned["binding"] is False and not pinned["passed"] and pinned["expected"] == 208.0 and pinned["actual"] == 200.0
    assert run.check("equivalence.partition")["binding"] and run.check("equivalence.partition")["passed"]


def test_strict_keeps_pinned_figures_binding(run_recipe):
    run = run_recipe("partition_latency", "transforms.partition.mode=cost_aware", "expect.strict=true",
                     "report.pictures=false")
    assert run.summary["status"] == "failed"
    assert run.summary["scenario"]["pinned_figures"] == "binding"


def test_a_failing_equivalence_still_fails_an_exploration(run_recipe):
    run = run_recipe("replace_target_nodes_with", "equivalence.reference=null", "seed=1")
    assert run.summary["scenario"]["pinned_figures"] == "shown"
    assert run.summary["status"] == "failed"


def test_recipe_as_written_is_held_to_its_figures(run_recipe):
    run = run_recipe("partition_latency", "report.pictures=false")
    assert run.summary["scenario"] == {"changed_by": [], "pinned_figures": "binding"}
    assert all(c["binding"] for c in run.summary["checks"])


def test_record_names_the_model_built_even_when_the_target_is_overridden(run_recipe):
    run = run_recipe("partition_latency", "model.module._target_=fxflow.models.partition_examples.WideDiamondLinear",
                     "report.pictures=false")
    assert run.summary["status"] == "passed" and run.summary["model"] == "WideDiamondLinear"
    stale = run_recipe("partition_latency", "+model.name=diamond_linear",
                       "model.module._target_=fxflow.models.partition_examples.WideDiamondLinear")
    assert stale.summary["status"] == "error" and "model.name" in stale.summary["error"]["message"]


@pytest.mark.parametrize("path", sorted(recipe_files().values()), ids=lambda p: Path(p).stem)
def test_recipes_pick_models_whole(path):
    """No recipe sets a model's target, name or inputs itself, so `model=NAME` replaces module and
    inputs together (a recipe may set `model.train` or an argument its models share)."""
    model = OmegaConf.load(path).get("model") or {}
    assert set(model) <= {"train", "module"}, sorted(model)
    assert "_target_" not in (model.get("module") or {})
