"""End to end: the default recipe through the CLI, its record, and its failure modes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def test_default_run_is_sparse_nn_and_passes(cli):
    proc, summary = cli()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["recipe"] == "sparse_nn"
    assert summary["status"] == "passed"
    metrics = summary["metrics"]
    assert metrics["partition.graph_node_count"] == 24
    assert metrics["partition.num_partitions"] == 4
    # torch's sparse_nn mode on three 33 MB devices: dense partitions replicated on dev_0 and
    # dev_1, each ~32 MB embedding partition on one device, dev_2 idle.
    placements = sorted(tuple(metrics[f"partition.partitions.{i}.logical_device_ids"]) for i in range(4))
    assert placements == [(0,), (0, 1), (0, 1), (1,)]
    assert metrics["partition.idle_devices"] == ["dev_2"]
    big = [metrics[f"partition.partitions.{i}.used_mem_bytes"] for i in range(4)]
    assert sum(b > 32_000_000 for b in big) == 2
    equivalence = [c for c in summary["checks"] if c["name"].startswith("equivalence.")]
    assert equivalence and all(c["passed"] for c in equivalence)
    assert equivalence[0]["reference"].startswith("eager model")
    assert summary["versions"]["torch"] and summary["timings"]["total"] > 0
    assert "stages" in proc.stdout and "dev_2 holds no partition" in proc.stdout


def test_record_files(cli, tmp_path):
    proc, summary = cli("recipe=sparse_nn", "devices=three_gpu")
    run = tmp_path / "run"
    assert proc.returncode == 0
    for rel in ("config.yaml", "summary.json", "graphs/00_trace.py", "graphs/02_partition.nodes.md",
                "partition/partition_report.md", "partition/partition_report.json", "partition/partition_graph.png"):
        assert (run / rel).is_file(), rel
    assert (run / "partition/partition_graph.png").read_bytes()[:4] == b"\x89PNG"
    assert "dev_2 holds no partition" in (run / "partition/partition_report.md").read_text()
    assert "submod_0" in (run / "graphs/02_partition.py").read_text()
    assert "recipe: sparse_nn" in (run / "config.yaml").read_text()
    assert not list(run.rglob("*.tmp"))


@pytest.mark.parametrize("override", ["devices=two_gpu", "devices.dev_0.mem_bytes=1000", "devices=one_gpu"])
def test_exit_code_agrees_with_record(cli, override):
    proc, summary = cli(override)
    assert summary is not None
    assert (proc.returncode == 0) == (summary["status"] == "passed")
    if summary["status"] != "passed":
        assert summary["error"]["stage"] == "partition"
        assert "B" in summary["error"]["message"]  # names bytes of a node or of the budgets
        assert "Traceback" not in proc.stdout + proc.stderr


def test_too_small_device_names_the_budget(cli):
    proc, summary = cli("devices.dev_0.mem_bytes=1000")
    assert proc.returncode != 0
    assert summary["status"] == "error"
    assert "dev_0 1000 B" in summary["error"]["message"]
    assert "dev_0 1000 B" in proc.stdout


def test_cfg_job_prints_composed_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fxflow", "recipe=sparse_nn", "--cfg", "job"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "recipe: sparse_nn" in proc.stdout
    assert "_target_: fxflow.transforms.Partition" in proc.stdout
    assert "mem_bytes: 33000000" in proc.stdout
    assert not (tmp_path / "outputs").exists()


BAD = [
    ("recipe=sparse_nnn", "recipe/sparse_nnn"),
    ("devices=tree_gpu", "devices/tree_gpu"),
    ("tracer=symbolc", "tracer/symbolc"),
    ("devices.dev_0.mem_bytes=33XB", "devices.dev_0.mem_bytes"),
    ("devices.dev_1.mem_bytes=-5", "devices.dev_1.mem_bytes"),
    ("transforms.partition.mode=fast", "transforms.partition.mode"),
    ("transforms.partition.mod=sparse_nn", "transforms.partition.mod"),
    ("+transforms.partition.mod=sparse_nn", "did you mean 'mode'"),
    ("transforms.partition._target_=fxflow.transforms.Partion", "transforms.partition._target_"),
    ("seed=abc", "seed"),
    ("model.inputs.a.shape=abc", "model.inputs.a.shape"),
    ("+model.inputs.z={shape:[2]}", "model.inputs.z"),
    ("model.module._target_=fxflow.models.recommendation.SparseNNN", "model.module._target_"),
    ("check.stages=[partiton]", "check.stages"),
    ("+devices.dev_3={mem_bytes:1MB,logical_id:3,name:dev_0}", "devices.dev_3.name"),
    ("seed=${nope}", "seed: does not resolve"),
]


@pytest.mark.parametrize("override,named", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_clear_message(cli, override, named):
    proc, summary = cli(override)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert named in out
    assert "Traceback" not in out
    assert summary is None or summary["status"] == "error"


def test_untraceable_model_is_a_clear_error(cli):
    proc, summary = cli(
        "model.module._target_=tests.fixtures_models.untraceable.DataDependent",
        "~model.inputs.b", "~model.inputs.offset", "model.inputs.a.shape=[4]",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert summary["status"] == "error" and summary["error"]["stage"] == "trace"
    assert "cannot be traced" in out and "tracer._target_" in out
    assert "Traceback" not in out


def test_misordered_transforms_are_refused_before_running(cli):
    proc, summary = cli("~transforms.size_nodes")
    assert proc.returncode != 0
    assert summary["status"] == "error" and summary["error"]["stage"] == "config"
    assert "needs 'node_sizes'" in summary["error"]["message"]
    assert "build" not in summary["timings"]  # nothing heavy ran
