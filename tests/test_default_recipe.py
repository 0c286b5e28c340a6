"""The default recipe (sparse_nn) in-process: its figures, its record, and what a bad config gives."""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException


def test_default_run_is_sparse_nn_and_passes(run_recipe):
    run = run_recipe(None, "report.pictures=false")  # the picture: test_record_files
    assert run.summary["recipe"] == "sparse_nn"
    assert run.summary["status"] == "passed"
    metrics = run.metrics
    assert metrics["partition.graph_node_count"] == 24
    assert metrics["partition.num_partitions"] == 4
    # torch's sparse_nn mode on three 33 MB devices: dense partitions replicated on dev_0 and
    # dev_1, each ~32 MB embedding partition on one device, dev_2 idle.
    placements = sorted(tuple(metrics[f"partition.partitions.{i}.logical_device_ids"]) for i in range(4))
    assert placements == [(0,), (0, 1), (0, 1), (1,)]
    assert metrics["partition.idle_devices"] == ["dev_2"]
    big = [metrics[f"partition.partitions.{i}.used_mem_bytes"] for i in range(4)]
    assert sum(b > 32_000_000 for b in big) == 2
    equivalence = [c for c in run.summary["checks"] if c["name"].startswith("equivalence.")]
    assert equivalence and all(c["passed"] for c in equivalence)
    assert equivalence[0]["reference"].startswith("eager model")
    assert run.summary["versions"]["torch"] and run.summary["timings"]["total"] > 0
    assert run.summary["stages"] == ["trace", "size_nodes", "partition"]
    words = [line for line in run.state.report if isinstance(line, str)]
    assert "dev_2 holds no partition: it stays idle." in words


def test_record_files(run_recipe):
    run = run_recipe("sparse_nn", "devices=three_gpu")
    for rel in ("config.yaml", "summary.json", "graphs/00_trace.py", "graphs/02_partition.nodes.md",
                "partition/partition_report.md", "partition/partition_report.json", "partition/partition_graph.png"):
        assert (run.run_dir / rel).is_file(), rel
    assert (run.run_dir / "partition/partition_graph.png").read_bytes()[:4] == b"\x89PNG"
    assert "dev_2 holds no partition" in (run.run_dir / "partition/partition_report.md").read_text()
    assert "submod_0" in (run.run_dir / "graphs/02_partition.py").read_text()
    assert "recipe: sparse_nn" in (run.run_dir / "config.yaml").read_text()
    assert "partition/partition_graph.png" in run.summary["files"]["partition"]
    assert not list(run.run_dir.rglob("*.tmp"))


def test_pictures_can_be_switched_off(run_recipe):
    run = run_recipe("partition_latency", "report.pictures=false")
    assert run.summary["status"] == "passed"
    assert (run.run_dir / "partition/partition_report.md").is_file()
    assert not (run.run_dir / "partition/partition_graph.png").exists()


def test_two_devices_hold_the_embeddings_with_nothing_idle(run_recipe):
    run = run_recipe("sparse_nn", "devices=two_gpu", "report.pictures=false")
    assert run.summary["status"] == "passed"
    assert run.metrics["partition.idle_devices"] == []


@pytest.mark.parametrize("override", ["devices.dev_0.mem_bytes=1000", "devices=one_gpu"])
def test_too_small_devices_are_an_error_naming_bytes(run_recipe, override):
    run = run_recipe("sparse_nn", override)
    assert run.summary["status"] == "error"
    assert run.summary["error"]["stage"] == "partition"
    assert " B" in run.summary["error"]["message"]  # names bytes of a node or of the budgets


def test_too_small_device_names_the_budget(run_recipe):
    run = run_recipe("sparse_nn", "devices.dev_0.mem_bytes=1000")
    assert "dev_0 1000 B" in run.summary["error"]["message"]
    assert run.metrics["partition.refusal.device_budgets.dev_0"] == 1000


BAD = [
    ("devices.dev_0.mem_bytes=33XB", "devices.dev_0.mem_bytes"),
    ("devices.dev_1.mem_bytes=-5", "devices.dev_1.mem_bytes"),
    ("transforms.partition.mode=fast", "transforms.partition.mode"),
    ("+transforms.partition.mod=sparse_nn", "did you mean 'mode'"),
    ("transforms.partition._target_=fxflow.transforms.partition.Partion", "transforms.partition._target_"),
    ("seed=abc", "seed"),
    ("model.inputs.a.shape=abc", "model.inputs.a.shape"),
    ("+model.inputs.z={shape:[2]}", "model.inputs.z"),
    ("model.module._target_=fxflow.models.recommendation.SparseNNN", "model.module._target_"),
    ("equivalence.stages=[partiton]", "equivalence.stages"),
    ("+devices.dev_3={mem_bytes:1MB,logical_id:3,name:dev_0}", "devices.dev_3.name"),
    ("seed=${nope}", "seed: does not resolve"),
]


@pytest.mark.parametrize("override,named", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_clear_message(run_recipe, override, named):
    run = run_recipe("sparse_nn", override)
    assert run.summary["status"] == "error"
    assert run.summary["error"]["stage"] == "config"
    assert named in run.summary["error"]["message"]
    assert "build" not in run.summary["timings"]  # refused before anything heavy ran


@pytest.mark.parametrize("override,named", [("recipe=sparse_nnn", "recipe/sparse_nnn"), ("devices=tree_gpu", "devices/tree_gpu"),
                                            ("tracer=symbolc", "tracer/symbolc")])
def test_unknown_group_option_is_refused_when_composing(override, named):
    from fxflow.compose import compose_recipe

    with pytest.raises(MissingConfigException, match=named):
        compose_recipe(None, [override])


def test_untraceable_model_is_a_clear_error(run_recipe, trust):
    trust("tests.fixtures_models")
    run = run_recipe("sparse_nn", "model.module._target_=tests.fixtures_models.untraceable.DataDependent",
                     "~model.inputs.b", "~model.inputs.offset", "model.inputs.a.shape=[4]")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "trace"
    assert "cannot be traced" in run.summary["error"]["message"]
    assert "tracer._target_" in run.summary["error"]["message"]


def test_misordered_transforms_are_refused_before_running(run_recipe):
    run = run_recipe("sparse_nn", "~transforms.size_nodes")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "config"
    assert "needs 'node_sizes'" in run.summary["error"]["message"]
    assert "build" not in run.summary["timings"]
