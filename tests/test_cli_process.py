"""The `fxflow` command as a process: exit codes, terminal output, Hydra's own errors, sweeps.

Each test here starts Python (a few seconds); everything that does not need a process is
tested in-process elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process


def test_default_run_exits_0_and_prints_the_report(cli):
    proc, summary = cli()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["status"] == "passed"
    assert "stages" in proc.stdout and "dev_2 holds no partition" in proc.stdout
    assert "status: passed" in proc.stdout


def test_error_exits_nonzero_with_one_message_and_no_traceback(cli):
    proc, summary = cli("transforms.partition.mode=fast")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert summary["status"] == "error"
    assert "transforms.partition.mode" in out and "Traceback" not in out


def test_hydra_level_error_names_the_option_without_traceback(cli):
    proc, summary = cli("recipe=sparse_nnn")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "recipe/sparse_nnn" in out and "Traceback" not in out
    assert summary is None


def test_cfg_job_prints_composed_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fxflow", "recipe=sparse_nn", "--cfg", "job"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "recipe: sparse_nn" in proc.stdout
    assert "_target_: fxflow.transforms.partition.PartitionOverDevices" in proc.stdout
    assert "mem_bytes: 33000000" in proc.stdout
    assert not (tmp_path / "outputs").exists()


def test_sweep_over_modes_and_devices(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "fxflow", "-m", "recipe=partition_latency", "report.pictures=false",
         "transforms.partition.mode=size_based,cost_aware", "devices=two_gpu,three_gpu", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=600,
    )
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert len(rows) == 4
    assert all("partition.critical_path_latency" in row["metrics"] for row in rows)
    assert {tuple(sorted(o for o in r["overrides"] if not o.startswith("report."))) for r in rows} == {
        tuple(sorted(["recipe=partition_latency", f"transforms.partition.mode={m}", f"devices={d}"]))
        for m in ("size_based", "cost_aware") for d in ("two_gpu", "three_gpu")
    }
    for row in rows:
        summary = json.loads((sweep / str(row["job"]) / "summary.json").read_text())
        assert summary["status"] == row["status"]
    # The recipe's figures hold only for its own device list, so these jobs fail their expectations.
    assert proc.returncode == 1
