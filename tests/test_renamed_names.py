"""Each word has one meaning: the execute stage's process group is `process_group` (`backend` is
the partition stage's torch/fxflow), and class names that meant two things were renamed. The old
spellings keep working for one release, with a warning."""

from __future__ import annotations

import importlib

import pytest

from fxflow.config.errors import ConfigError
from fxflow.plan import plan_run

DEVICES = {"dev_0": {"mem_bytes": 1000, "logical_id": 0}, "dev_1": {"mem_bytes": 1000, "logical_id": 1}}


def config(execute: dict) -> dict:
    return {"recipe": "unit", "model": {"module": {"_target_": "fxflow.models.partition_examples.Add"},
                                        "inputs": {"a": {"shape": [4]}, "b": {"shape": [4]}}},
            "tracer": {"_target_": "fxflow.tracers.SymbolicTracer"}, "devices": DEVICES,
            "transforms": {"size": {"_target_": "fxflow.transforms.sizing.SizeNodes"},
                           "partition": {"_target_": "fxflow.transforms.partition.PartitionOverDevices"},
                           "execute": {"_target_": "fxflow.transforms.execute.ExecutePartitions", **execute}}}


def test_the_execute_stage_names_its_process_group_so():
    assert plan_run(config({"process_group": "gloo"})).transforms["execute"].process_group == "gloo"


def test_the_old_backend_key_still_works_for_one_release_with_a_warning():
    with pytest.warns(FutureWarning, match="`backend` is now `process_group`") as caught:
        plan = plan_run(config({"process_group": "auto", "backend": "gloo"}))
    assert plan.transforms["execute"].process_group == "gloo"
    blamed = [w.filename for w in caught if "process_group" in str(w.message)]
    assert blamed and all("config" in f and "pydantic" not in f for f in blamed), blamed  # not a library's line


def test_old_and_new_keys_that_disagree_are_refused_naming_both():
    with pytest.raises(ConfigError) as caught:
        plan_run(config({"process_group": "nccl", "backend": "gloo"}))
    assert any(p.path.startswith("transforms.execute") and "backend=gloo and process_group=nccl" in p.message
               for p in caught.value.problems), caught.value.render()


@pytest.mark.parametrize("module,old,new", [
    ("fxflow.plan", "Plan", "RunPlan"),
    ("fxflow.config.errors", "Problem", "ConfigProblem"),
    ("fxflow.distributed.plan", "Placement", "SlotAssignment"),
])
def test_renamed_classes_answer_to_their_old_name_for_one_release(module, old, new):
    loaded = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(loaded, old) is getattr(loaded, new)
