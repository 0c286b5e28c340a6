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


def test_a_run_exits_0_and_prints_the_report(cli):
    # the default recipe's figures and picture are tested in-process (test_default_recipe.py)
    proc, summary = cli("recipe=saturate_host", "report.pictures=false")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["status"] == "passed"
    assert "stages" in proc.stdout and "partition 0 is replicated on dev_0 and dev_4" in proc.stdout
    assert "status: passed" in proc.stdout


def test_error_exits_nonzero_with_one_message_and_no_traceback(cli):
    proc, summary = cli("transforms.partition.mode=fast")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert summary["status"] == "error"
    assert "transforms.partition.mode" in out and "Traceback" not in out


def test_a_mistyped_recipe_names_the_close_one_without_traceback(cli):
    proc, summary = cli("recipe=sparse_nnn")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "recipe=sparse_nnn: no recipe 'sparse_nnn' (did you mean 'sparse_nn'" in out and "Traceback" not in out
    assert summary["status"] == "error" and summary["error"]["stage"] == "compose"  # README: Bad input


def _imported(stderr: str) -> set[str]:
    """The modules a `python -X importtime` process imported, from its report on stderr."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_cfg_job_prints_composed_config_without_importing_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fxflow", "recipe=sparse_nn", "--cfg", "job"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recipe: sparse_nn" in proc.stdout
    assert "_target_: fxflow.transforms.partition.PartitionOverDevices" in proc.stdout
    assert "mem_bytes: 33000000" in proc.stdout
    assert not (tmp_path / "outputs").exists()
    imported = _imported(proc.stderr)
    assert "hydra" in imported and "torch" not in imported  # printing a config needs no torch (~1.5 s)


def test_ls_imports_no_torch_and_a_torch_function_still_resolves_where_torch_is_not_loaded(tmp_path):
    """`fxflow ls` reads configs only; a target that names torch imports torch when it is judged."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fxflow", "ls"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "sparse_nn" in proc.stdout, proc.stderr[-3000:]
    assert "torch" not in _imported(proc.stderr)
    judged = subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "from fxflow.config.targets import TargetPolicy\n"
        "assert 'torch' not in sys.modules\n"
        "relu = TargetPolicy().graph_function('torch.nn.functional.relu')\n"
        "import torch\n"
        "assert relu is torch.nn.functional.relu\n"
        "print(TargetPolicy().torch_operator('torch.ops.aten.add.Tensor'))\n")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert judged.returncode == 0, judged.stderr[-3000:]
    assert judged.stdout.strip() == "aten.add.Tensor"


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_readme_sweep_on_each_launcher_leaves_one_folder_that_a_rerun_skips(launcher, tmp_path, monkeypatch):
    """The README's sweep as written (no hydra.sweep.dir) through fxflow's entry point with a launcher
    that runs jobs in other processes (started from this process, so only the workers pay Python's
    start-up): every job writes into the one sweep folder the launching process chose. Then the
    identical sweep into that folder again: every job passed earlier, so none runs."""
    from hydra.core.global_hydra import GlobalHydra
    from test_readme import sweep_command

    from fxflow.cli import main

    monkeypatch.chdir(tmp_path)
    # joblib: one worker process, the launcher's path at the cost of one Python start-up
    launch = [f"hydra/launcher={launcher}", *(["hydra.launcher.n_jobs=1"] if launcher == "joblib" else [])]
    argv = [*sweep_command(), "report.pictures=false", *launch]

    def run(*extra: str) -> int:
        GlobalHydra.instance().clear()
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, *extra])
        GlobalHydra.instance().clear()
        return exit_info.value.code

    assert run() == 0
    folders = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    assert len(folders) == 1, folders  # no worker made a folder of its own
    sweep = folders[0]
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert len(rows) == 4 and (sweep / "sweep_summary.csv").is_file() and (sweep / "sweep_summary.png").is_file()
    for row in rows:
        summary = json.loads((sweep / str(row["job"]) / "summary.json").read_text())
        assert (row["status"], row["overrides"]) == (summary["status"], summary["overrides"])
        assert row["metrics"] == {k: summary["metrics"][k] for k in summary["key_metrics"]}
        assert summary["run_dir"] == str(sweep / str(row["job"]))
    figures = {(r["metrics"]["partition.num_partitions"], r["metrics"]["partition.critical_path_latency"]) for r in rows}
    assert len(figures) == 4  # device count and mode change the partition count and the critical path
    if launcher == "joblib":
        assert run(f"hydra.sweep.dir={sweep}") == 0
        rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
        assert all(row["earlier"] and row["status"] == "passed" for row in rows)
