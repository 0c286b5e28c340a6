"""Pipeline features recipes rely on: per-stage graph facts, comparators, expected raises,
structured and keyword inputs, requirements that skip a run, probes."""

from __future__ import annotations

import json

import pytest

from fxflow.checks import expectations as ex
from fxflow.pipeline import run_job

pytestmark = pytest.mark.usefixtures("trusted_fixtures")  # models and transforms from tests.fixtures_models

FIX = "tests.fixtures_models.features"


def config(module: str, inputs: dict, transforms: dict | None = None, **extra) -> dict:
    return {
        "recipe": "unit", "model": {"module": {"_target_": module}, "inputs": inputs},
        "tracer": {"_target_": "fxflow.tracers.SymbolicTracer"}, "transforms": transforms or {}, **extra,
    }


def run(cfg: dict, tmp_path) -> dict:
    run_job(cfg, tmp_path / "run", [])
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def test_every_stage_records_graph_facts(tmp_path):
    summary = run(config("fxflow.models.partition_examples.LinearPlusInput", {"a": {"shape": [4]}},
                         {"size": {"_target_": "fxflow.transforms.sizing.SizeNodes"}}), tmp_path)
    m = summary["metrics"]
    assert summary["status"] == "passed"
    for stage in ("trace", "size"):
        assert m[f"{stage}.graph.node_count"] == 4
        assert m[f"{stage}.graph.lint"] == "ok"
        assert m[f"{stage}.graph.placeholders"] == ["a"]
        assert m[f"{stage}.graph.targets"] == ["call_function:operator.add", "call_module:torch.nn.Linear"]
        assert m[f"{stage}.graph.target_counts.call_module:torch.nn.Linear"] == 1


@pytest.mark.parametrize("actual,expected,ok", [
    (["a", "b"], {"excludes": "c"}, True),
    (["a", "b"], {"excludes": ["c", "b"]}, False),
    (["a", "b"], {"subset": ["a", "b", "c"]}, True),
    (["a", "d"], {"subset": ["a", "b", "c"]}, False),
    (["a", "b", "c"], {"superset": ["a", "c"]}, True),
    (["a", "b"], {"superset": ["a", "c"]}, False),
    ("call_module:torch.nn.Linear", {"matches": "Linear$"}, True),
    (3, {"matches": "3"}, False),
    (3, {"subset": [3]}, False),
])
def test_collection_comparators(actual, expected, ok):
    assert ex.judge(actual, expected)[0] is ok


def test_expected_raise_on_other_inputs_from_stage_and_reference(tmp_path):
    cfg = config(f"{FIX}.AssertEqual", {"a": {"value": 3}, "b": {"value": 3}},
                 expect={"raises": [{"inputs": {"b": {"value": 5}}, "type": "AssertionError", "match": "a and b differ"}]})
    cfg["tracer"] = {"_target_": "fxflow.tracers.RewritingTracer"}
    summary = run(cfg, tmp_path)
    assert summary["status"] == "passed", summary["checks"]
    raised = next(c for c in summary["checks"] if c["name"] == "raises.trace")
    assert set(raised["actual"]) == {"stage trace", "eager model (trace-time RNG replayed)"}
    assert summary["metrics"]["trace.graph.target_counts.call_function:torch._assert"] == 1


def test_expected_raise_fails_when_nothing_raises(tmp_path):
    cfg = config(f"{FIX}.AssertEqual", {"a": {"value": 3}, "b": {"value": 3}},
                 expect={"raises": [{"inputs": {"b": {"value": 3}}, "type": "AssertionError"}]})
    cfg["tracer"] = {"_target_": "fxflow.tracers.RewritingTracer"}
    summary = run(cfg, tmp_path)
    assert summary["status"] == "failed"
    assert "returned without raising" in next(c for c in summary["checks"] if c["name"] == "raises.trace")["detail"]


def test_structured_inputs(tmp_path):
    inputs = {
        "inp": {"items": [{"shape": [3]}, {"shape": [3]}], "container": "tuple"},
        "items": {"items": [{"shape": [3], "dist": "randn"}]},
        "pair": {"object": {"_target_": f"{FIX}.Pair", "x": {"value": 2}, "y": {"value": 0.5}}},
    }
    summary = run(config(f"{FIX}.Structured", inputs, equivalence={"stages": "all"}), tmp_path)
    assert summary["status"] == "passed", summary["checks"]


def test_keyword_inputs_reach_a_kwargs_forward(tmp_path):
    inputs = {"x": {"shape": [5, 3]}, "foo": {"shape": [5, 3], "keyword": True}}
    summary = run(config(f"{FIX}.KwargsExpansion", inputs), tmp_path)
    assert summary["status"] == "passed", summary["checks"]


def test_unmet_requirement_skips_the_run(tmp_path):
    cfg = config("fxflow.models.partition_examples.Add", {"a": {"shape": [4]}, "b": {"shape": [4]}},
                 requires={"packages": ["surely_not_installed_pkg"]})
    summary = run(cfg, tmp_path)
    assert summary["status"] == "skipped"
    assert "surely_not_installed_pkg" in summary["skipped"]
    assert "build" not in summary["timings"]


def test_a_probe_is_not_compared_and_says_so(tmp_path):
    cfg = config("fxflow.models.partition_examples.Add", {"a": {"shape": [4]}, "b": {"shape": [4]}},
                 {"count": {"_target_": f"{FIX}.CountCalls"}}, expect={"metrics": {"count": {"calls": 1}}})
    summary = run(cfg, tmp_path)
    assert summary["status"] == "passed"
    assert [c["name"] for c in summary["checks"]] == ["equivalence.trace", "expect.count.calls"]
    assert any("probe" in note for note in summary["notes"])


def test_a_transform_that_changes_the_computation_fails_equivalence(tmp_path):
    cfg = config("fxflow.models.partition_examples.Add", {"a": {"shape": [4]}, "b": {"shape": [4]}},
                 {"negate": {"_target_": f"{FIX}.Negate"}})
    summary = run(cfg, tmp_path)
    assert summary["status"] == "failed"
    assert not summary["checks"][0]["passed"] and summary["checks"][0]["name"] == "equivalence.negate"
