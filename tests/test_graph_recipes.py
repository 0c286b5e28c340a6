"""The tracing, split_module and export recipes hold because their step does the work: with the
rewrite, the split or its policy changed they fail. And the same transforms on other models,
with split_module options the torch tests do not use, pass where they should and are refused
with a message naming the config key where they should not.

(Each recipe's own run with its torch test's figures is in test_recipes.py.)"""

from __future__ import annotations

import importlib.util
import json

import pytest

from fxflow.config.errors import ConfigError
from fxflow.pipeline import run_job
from fxflow.plan import plan_run

pytestmark = pytest.mark.usefixtures("trusted_fixtures")  # models and transforms from tests.fixtures_models

POLICY = "fxflow.transforms.split_policies."
SPLITS = "tests.fixtures_models.splits."


# --------------------------------------------------------------------------- recipes fail without their step


@pytest.mark.parametrize("override,status,broken", [
    ("tracer=symbolic", "error", None),  # without the rewrite the assert cannot be traced at all
    ("tracer=meta", "failed", "raises.trace"),  # the meta tracer specialises a == b away: b=5 hits its guard instead
])
def test_assert_recipe_fails_without_the_rewrite(run_recipe, override, status, broken):
    run = run_recipe("call_to_assert_with_msg", override, "expect.strict=true")  # pinned figures stay binding
    assert run.summary["status"] == status
    if broken:
        assert not run.check(broken)["passed"]
        assert "test message" not in json.dumps(run.check(broken)["actual"]["stage trace"])


@pytest.mark.parametrize("recipe,override,broken", [
    ("subgraph_creation", "transforms.split.policy.partitions=1", "expect.split.submodules"),
    ("subgraph_creation", "~transforms.split.mark_meta", "expect.split.meta_kept"),
    ("split_qualname_mapping", "transforms.split.policy.mode=around", "expect.split.qualname_map_keys"),
    ("split_module_dead_code", "transforms.split.keep_original_order=true", "expect.split.submodules"),
])
def test_split_recipe_fails_when_its_policy_or_options_change(run_recipe, recipe, override, broken):
    """The split is still correct (equivalence holds); it is just not the torch test's split."""
    run = run_recipe(recipe, override, "expect.strict=true")  # pinned figures stay binding
    assert run.summary["status"] == "failed"
    assert not run.check(broken)["passed"]
    assert run.check("equivalence.split")["passed"]


def test_split_recipe_without_its_split_is_refused(run_recipe):
    run = run_recipe("split_qualname_mapping", "~transforms.split")
    assert run.summary["status"] == "error"
    assert "expect.metrics.split: names no stage" in run.summary["error"]["message"]


def test_a_cyclic_split_is_refused_naming_the_partitions(run_recipe):
    run = run_recipe("subgraph_creation", "transforms.split.policy.partitions=2")
    assert run.summary["status"] == "error"
    message = run.summary["error"]["message"]
    assert message.startswith("transforms.split (SplitModule) failed") and "cycle (0 -> 1 -> 0" in message


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_resnet_is_skipped_without_torchvision(run_recipe):
    run = run_recipe("subgraph_trivial_resnet", "model=torchvision_resnet18")
    assert run.summary["status"] == "skipped"
    assert "package 'torchvision' is not installed" in run.summary["skipped"]


# --------------------------------------------------------------------------- the transforms on other models


def config(model: str, inputs: dict, transforms: dict, tracer: str = "SymbolicTracer", **extra) -> dict:
    return {"recipe": "held_out", "model": {"module": {"_target_": model}, "inputs": inputs},
            "tracer": {"_target_": f"fxflow.tracers.{tracer}"}, "transforms": transforms, **extra}


def split(policy: dict, **options) -> dict:
    return {"_target_": "fxflow.transforms.split.SplitModule", "policy": policy, **options}


def run(cfg: dict, tmp_path) -> dict:
    run_job(cfg, tmp_path / "run", [])
    return json.loads((tmp_path / "run" / "summary.json").read_text())


MM_LINEAR = ("fxflow.models.split_examples.ExampleCode", {"x": {"shape": [3, 4], "dist": "randn"}})


def test_every_split_option_with_a_function_policy_then_export_and_pickle(tmp_path):
    """A user's split function, every split_module option the torch tests leave at its default,
    then the split module exported, re-imported and pickled: every stage equals the model."""
    options = dict(keep_original_order=True, keep_original_node_name=True, keep_original_input_name=False,
                   partition_affix="pp", tuple_return=True)
    cfg = config(*MM_LINEAR, {
        "split": split({"_target_": POLICY + "ByFunction", "function": SPLITS + "linears_before"}, **options),
        "export": {"_target_": "fxflow.transforms.export_folder.ExportFolder"},
        "pickle": {"_target_": "fxflow.transforms.pickle_round_trip.PickleRoundTrip"},
    }, equivalence={"stages": "all"})
    summary = run(cfg, tmp_path)
    m = summary["metrics"]
    assert summary["status"] == "passed", summary["checks"]
    stages = ("trace", "split", "export", "pickle")
    assert [c["name"] for c in summary["checks"]] == [f"equivalence.{stage}" for stage in stages]
    assert m["split.submodules"] == ["submod_pp_0", "submod_pp_1", "submod_pp_2"]
    assert m["split.qualname_map_keys"] == ["submod_pp_1.lin", "submod_pp_2.lin"]
    assert m["split.nodes.submod_pp_1"] == ["arg_0", "arg_1", "lin", "relu_1", "mm_2", "output"]  # original names
    assert m["split.graph.target_counts.call_function:operator.getitem"] == 3  # every submodule returns a tuple
    assert m["export.pickled_children"] == ["submod_pp_0", "submod_pp_1", "submod_pp_2"]
    assert m["pickle.graph.module"].endswith(".module.FxModule")


def test_export_of_an_annotated_forward(tmp_path):
    """`forward(self, a: torch.Tensor, ...)`: to_folder alone would write code naming `_torch_Tensor_`."""
    cfg = config("fxflow.models.partition_examples.Add", {"a": {"shape": [4]}, "b": {"shape": [4]}},
                 {"export": {"_target_": "fxflow.transforms.export_folder.ExportFolder"}})
    summary = run(cfg, tmp_path)
    assert summary["status"] == "passed", summary.get("error") or summary["checks"]
    assert summary["metrics"]["export.dropped_annotations"] == 3  # a, b and the output
    trace_code = (tmp_path / "run" / "graphs" / "00_trace.py").read_text()
    assert trace_code.count("_torch_Tensor_") == 3  # the trace keeps its annotations


def test_node_groups_and_lowering_attributes_inside_split_submodules(tmp_path):
    cfg = config("fxflow.models.export_examples.ConvAddBatchNorm", {"a": {"shape": [1, 3, 4, 4]}}, {
        "split": split({"_target_": POLICY + "NodeGroups", "node_to_partition": {"conv": 0}, "default": 1}),
        "lower": {"_target_": "fxflow.transforms.lowering_attrs.LoweringAttrs"},
    })
    summary = run(cfg, tmp_path)
    m = summary["metrics"]
    assert summary["status"] == "passed", summary["checks"]
    assert (m["split.assignment.conv"], m["split.assignment.add"], m["split.assignment.bn"]) == (0, 1, 1)
    assert (m["lower.nodes.submod_0.conv.key_count"], m["lower.nodes.submod_1.bn.key_count"]) == (9, 6)
    assert any("lower is a probe" in note for note in summary["notes"])


def test_lowering_a_module_torch_has_no_attributes_for_fails_with_torchs_message(tmp_path):
    cfg = config("fxflow.models.export_examples.ToFolderModule", {"x": {"shape": [2, 2]}},
                 {"lower": {"_target_": "fxflow.transforms.lowering_attrs.LoweringAttrs"}})
    summary = run(cfg, tmp_path)
    assert summary["status"] == "error"
    assert summary["error"]["message"].startswith("transforms.lower (LoweringAttrs) failed")
    assert "torch.nn.modules.batchnorm.BatchNorm1d is not in the module_fetch_book" in summary["error"]["message"]


@pytest.mark.parametrize("policy,message", [
    ({"_target_": POLICY + "CutAt", "op": "call_module", "target": "linear"},
     "cut_at matches no node (op=call_module, target=linear): nothing would be split; the graph's call_module "
     "targets are ['lin']"),
    ({"_target_": POLICY + "NodeGroups", "node_to_partition": {"lin": 1, "foo": 0}},
     "node_groups names no node ['foo']"),
    ({"_target_": POLICY + "NodeGroups", "node_to_partition": {"lin": 1}}, "node_groups leaves ['mm', 'relu'"),
    ({"_target_": POLICY + "ByFunction", "function": SPLITS + "minus_one"},
     "tests.fixtures_models.splits.minus_one(mm) returned -1; a partition id is an int >= 0"),
])
def test_a_policy_that_does_not_fit_the_graph_stops_the_split_with_a_message(tmp_path, policy, message):
    summary = run(config(*MM_LINEAR, {"split": split(policy)}), tmp_path)
    assert summary["status"] == "error"
    assert summary["error"]["stage"] == "split" and message in summary["error"]["message"]


@pytest.mark.parametrize("transforms,path,message", [
    ({"split": split({"_target_": POLICY + "RoundRobin", "partitions": 0})},
     "transforms.split.policy.partitions", "greater than 0"),
    ({"split": split({"_target_": POLICY + "Constant", "partition": -1})},
     "transforms.split.policy.partition", "greater than or equal to 0"),
    ({"split": split({"_target_": POLICY + "ByFunction", "function": "operator.add"})},
     "transforms.split.policy.function", "'operator.add' is in a package a config may never name"),
    ({"split": split({"_target_": POLICY + "ByFunction", "function": "torch.nn.Linear"})},
     "transforms.split.policy.function", "'torch.nn.Linear' is not a Python function (it is a class"),
    ({"split": split({"_target_": POLICY + "ByFunction", "function": SPLITS + "two_arguments"})},
     "transforms.split.policy.function", "cannot be called with one node"),
    ({"split": split({"_target_": POLICY + "ByFunction", "function": "no_such_package.split"})},
     "transforms.split.policy.function", "'no_such_package.split' is not from a package fxflow builds from"),
    ({"split": split({"_target_": POLICY + "CutAt", "op": "call_function", "target": "operator.mull"})},
     "transforms.split.policy.target", "function 'operator.mull' cannot be imported"),
    ({"split": split({"_target_": POLICY + "CutAt", "op": "call_fn"})}, "transforms.split.policy.op", "call_function"),
    ({"split": split({"_target_": "fxflow.partitioning.latency.SizeRuleLatency"})},
     "transforms.split.policy._target_", "is not a SplitPolicy"),
    ({"split": split({"_target_": POLICY + "Constant"}, partition_affix="p-p")},
     "transforms.split.partition_affix", "would not make a module name"),
    ({"split": split({"_target_": POLICY + "Constant"}, keep_original_order="sometimes")},
     "transforms.split.keep_original_order", "valid boolean"),
    ({"split": {"_target_": "fxflow.transforms.split.SplitModule"}}, "transforms.split.policy", "required"),
    ({"export": {"_target_": "fxflow.transforms.export_folder.ExportFolder", "module_name": "1Foo"}},
     "transforms.export.module_name", "not a Python class name"),
    ({"pickle": {"_target_": "fxflow.transforms.pickle_round_trip.PickleRoundTrip", "protocol": 99}},
     "transforms.pickle.protocol", "less than or equal to"),
])
def test_bad_transform_parameters_are_refused_naming_the_key(transforms, path, message):
    with pytest.raises(ConfigError) as info:
        plan_run(config(*MM_LINEAR, transforms))
    (problem,) = info.value.problems
    assert problem.path == path and message in problem.render()


def test_a_function_model_takes_no_arguments_and_its_inputs_are_checked():
    """A plain function is the model itself (traced as written): it takes no config arguments,
    and the declared inputs must be its parameters."""
    cfg = config("fxflow.models.tracing_examples.foo", {"y": {"shape": [4]}}, {}, tracer="RewritingTracer")
    cfg["model"]["module"]["scale"] = 2
    with pytest.raises(ConfigError, match="a function that is traced as written"):
        plan_run(cfg)
    del cfg["model"]["module"]["scale"]
    with pytest.raises(ConfigError) as info:
        plan_run(cfg)
    assert sorted(p.path for p in info.value.problems) == ["model.inputs.x", "model.inputs.y"]

def test_the_split_shares_the_weights_and_leaves_the_graph_it_split_as_it_was(tmp_path):
    """The split module holds the traced module's own parameters (a model is not held twice), and
    the marks and partition tags it writes go on a graph of its own."""
    import torch
    from torch.fx import symbolic_trace

    from fxflow.models.split_examples import ParamLinearClamp
    from fxflow.transforms.base import StageContext
    from fxflow.transforms.split import SplitModule
    from fxflow.transforms.split_policies import NodeGroups

    gm = symbolic_trace(ParamLinearClamp())
    before = {node.name: dict(node.meta) for node in gm.graph.nodes}
    step = SplitModule(policy=NodeGroups(node_to_partition={"add_1": 1}, default=0), mark_meta={"seen": 1})
    split = step.apply(gm, StageContext("split", None, [], tmp_path))
    assert list(dict(split.named_children())) == ["submod_0", "submod_1"]
    ours = {id(p) for p in gm.parameters()}
    assert len(ours) == 3 and {id(p) for p in split.parameters()} == ours  # param, linear.weight, linear.bias
    assert {node.name: dict(node.meta) for node in gm.graph.nodes} == before
    assert not any(hasattr(node, "_fx_partition") for node in gm.graph.nodes)
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(split(x, y), gm(x, y), rtol=0, atol=0)
