"""The stage protocol: each transform declares the kind of module it takes and gives and the model
of its facts; planning refuses an order whose kinds do not chain, the runner holds each stage to
its declaration, and reports are chosen by the type of a stage's facts (fxflow.stages)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from fxflow.config.errors import ConfigError
from fxflow.plan import plan_run
from fxflow.stages import GRAPH, MODULE, PLACED, SCRIPTED, kind_of
from fxflow.verbs import run_verb

pytestmark = pytest.mark.usefixtures("trusted_fixtures")  # transforms from tests.fixtures_models

FIX = "tests.fixtures_models.contracts"
SCRIPT = {"_target_": "fxflow.transforms.script.Script"}
FUSE = {"_target_": "fxflow.transforms.fuse.FuseConvBn"}
SIZE = {"_target_": "fxflow.transforms.sizing.SizeNodes"}
PARTITION = {"_target_": "fxflow.transforms.partition.PartitionOverDevices"}
EXECUTE = {"_target_": "fxflow.transforms.execute.ExecutePartitions"}
NODE_META = {"_target_": "fxflow.transforms.node_meta.NodeMeta", "key": "tag"}
DEVICES = {"dev_0": {"mem_bytes": 1000, "logical_id": 0}, "dev_1": {"mem_bytes": 1000, "logical_id": 1}}


def config(transforms: dict, **extra) -> dict:
    return {"recipe": "unit", "model": {"module": {"_target_": "fxflow.models.partition_examples.Add"},
                                        "inputs": {"a": {"shape": [4]}, "b": {"shape": [4]}}},
            "tracer": {"_target_": "fxflow.tracers.SymbolicTracer"}, "transforms": transforms, **extra}


def problems(cfg: dict) -> list[str]:
    try:
        plan_run(cfg)
    except ConfigError as exc:
        return [p.render() for p in exc.problems]
    return []


def test_script_then_fuse_is_refused_at_validate_naming_both_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipes = tmp_path / "fxflow_conf" / "recipes"
    recipes.mkdir(parents=True)
    (recipes / "script_then_fuse.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /transform@transforms.script: script\n  - /transform@transforms.fuse: fuse\n"
        "  - override /model: add\n  - override /devices: none\nrecipe: script_then_fuse\n")
    out = io.StringIO()
    code = run_verb(["validate", "script_then_fuse"], Console(file=out, width=300, color_system=None))
    text = out.getvalue()
    assert code == 1, text
    line = next(line for line in text.splitlines() if "transforms.fuse" in line)
    assert "transforms.script (Script)" in line and "TorchScript module" in line and "GraphModule" in line, line


def test_the_same_steps_in_the_other_order_chain():
    assert problems(config({"fuse": FUSE, "script": SCRIPT})) == []


def test_a_graph_step_after_script_is_refused_even_a_probe():
    found = problems(config({"script": SCRIPT, "meta": NODE_META}))
    assert len(found) == 1 and found[0].startswith("transforms.meta:") and "transforms.script" in found[0]


def test_execute_needs_a_placed_module_and_a_probe_passes_the_placement_on():
    refused = problems(config({"size": SIZE, "execute": EXECUTE}, devices=DEVICES))
    assert any(p.startswith("transforms.execute:") and "placed on devices" in p and "transforms.size (SizeNodes)" in p
               for p in refused), refused
    assert problems(config({"size": SIZE, "partition": PARTITION, "meta": NODE_META, "execute": EXECUTE},
                           devices=DEVICES)) == []


def test_kinds_nest_as_the_modules_do():
    assert PLACED.is_a(GRAPH) and GRAPH.is_a(MODULE) and SCRIPTED.is_a(MODULE)
    assert not SCRIPTED.is_a(GRAPH) and not GRAPH.is_a(PLACED)
    assert kind_of(lambda x: x).name == "callable"


def run(cfg: dict, tmp_path) -> dict:
    from fxflow.pipeline import run_job

    run_job(cfg, tmp_path / "run", [])
    return json.loads((tmp_path / "run" / "summary.json").read_text())


def test_a_stage_that_returns_another_kind_than_it_declares_is_an_error(tmp_path):
    summary = run(config({"sneaky": {"_target_": f"{FIX}.WrapsWithoutSaying"}}), tmp_path)
    assert summary["status"] == "error" and summary["error"]["stage"] == "sneaky"
    message = summary["error"]["message"]
    assert message.startswith("transforms.sneaky (WrapsWithoutSaying) failed"), message
    assert "gives a GraphModule, but it returned an nn.Module (Sequential)" in message


def test_a_stage_whose_facts_miss_what_its_model_names_is_an_error(tmp_path):
    summary = run(config({"forgets": {"_target_": f"{FIX}.ForgetsItsFacts"}}), tmp_path)
    assert summary["status"] == "error" and summary["error"]["stage"] == "forgets"
    assert "CountFacts" in summary["error"]["message"] and "count" in summary["error"]["message"]


def test_reports_follow_the_facts_type_not_their_keys(tmp_path):
    summary = run(config({"lookalike": {"_target_": f"{FIX}.PartitionLookalike"}}), tmp_path)
    assert summary["status"] == "passed"
    assert summary["files"]["lookalike"] and all(f.startswith("graphs/") for f in summary["files"]["lookalike"])
    assert not (tmp_path / "run" / "lookalike").exists()


def test_a_partition_stage_gets_its_report_and_hands_on_typed_facts(run_recipe):
    run = run_recipe("size_based_partition")
    assert run.summary["status"] == "passed"
    assert "partition/partition_report.md" in run.summary["files"]["partition"]


def test_every_shipped_transform_names_the_facts_it_records():
    from fxflow.config.components import known_subclasses
    from fxflow.plan import load_transforms
    from fxflow.stages import StageFacts
    from fxflow.transforms.base import Transform

    load_transforms()
    shipped = {path: cls for path, cls in known_subclasses(Transform).items() if path.startswith("fxflow.transforms.")}
    assert len(shipped) >= 20
    bare = [path for path, cls in shipped.items() if cls.facts_model is StageFacts]
    assert not bare, f"these transforms record facts no model names: {bare}"
