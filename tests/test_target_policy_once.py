"""The target policy (what a config's dotted paths may name) is built once per run, from the
environment, and handed down: validators that resolve a path (leaf modules, a split function)
and inputs built from a class use that one policy, never rebuilding their own."""

from __future__ import annotations

import pytest

from fxflow.config.targets import TargetPolicy

pytestmark = pytest.mark.usefixtures("trusted_fixtures")  # the split function from tests.fixtures_models


@pytest.fixture
def built(monkeypatch) -> list[int]:
    """Counts every TargetPolicy built from the environment."""
    calls: list[int] = []
    original = TargetPolicy.from_environment

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(TargetPolicy, "from_environment", classmethod(counting))
    return calls


def test_a_run_with_leaf_modules_a_split_function_and_object_inputs_builds_one_policy(tmp_path, built):
    from fxflow.pipeline import run_job

    cfg = {"recipe": "unit",
           "model": {"module": {"_target_": "fxflow.models.split_examples.ExampleCode"},
                     "inputs": {"x": {"shape": [3, 4], "dist": "randn"}}},
           "tracer": {"_target_": "fxflow.tracers.SymbolicTracer", "leaf_modules": ["torch.nn.Linear"]},
           "transforms": {"split": {"_target_": "fxflow.transforms.split.SplitModule",
                                    "policy": {"_target_": "fxflow.transforms.split_policies.ByFunction",
                                               "function": "tests.fixtures_models.splits.linears_before"}}},
           "equivalence": {"fresh_inputs": 2}}
    state = run_job(cfg, tmp_path / "run", [])
    assert state.status == "passed", state.error or [c.to_json() for c in state.checks]
    assert state.facts["split"]["submodules"]  # the function policy was called
    assert len(built) == 1


def test_inputs_built_from_a_class_use_the_runs_policy(run_recipe, built):
    run = run_recipe("annotate_getitem_node")  # its model takes a CustomType and a named tuple
    assert run.summary["status"] == "passed"
    assert len(built) == 1
