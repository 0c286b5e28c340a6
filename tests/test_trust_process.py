"""Records that hold up as processes: two runs of one recipe started together in one folder,
interrupted by SIGINT and SIGTERM in the middle of a transform.

Both processes start at once (one module fixture), so the file costs about one process's
time; each test then reads its own outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.process

FIXTURES = "tests.fixtures_models"
SLEEP = f"+transforms.sleep={{_target_:{FIXTURES}.misbehaving.Sleep,seconds:60}}"
SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Start two runs of one recipe in one folder (default run directories); signal each once
    its slow transform has started."""
    base = tmp_path_factory.mktemp("trust")
    (base / "together").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "FXFLOW_TRUSTED_PACKAGES": FIXTURES}
    env.pop("FXFLOW_OVERWRITE", None)

    def start(args: list[str]) -> subprocess.Popen:
        # PYTHONPATH holds the checkout, so the trusted test package imports; runs land in together/outputs
        return subprocess.Popen([sys.executable, "-m", "fxflow", *args], cwd=base / "together", env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    outputs = base / "together" / "outputs"
    procs = {name: start(["recipe=replace_target_nodes_with", SLEEP]) for name in SIGNALS}
    by_pid = {procs[name].pid: name for name in SIGNALS}
    deadline = time.monotonic() + 240
    waiting = set(SIGNALS)
    while waiting and time.monotonic() < deadline:
        for started in outputs.glob("*/*/sleep/started"):
            name = by_pid.get(json.loads((started.parents[1] / "summary.json").read_text())["process"]["pid"])
            if name in waiting:
                procs[name].send_signal(SIGNALS[name])
                waiting.discard(name)
        waiting = {name for name in waiting if procs[name].poll() is None}
        time.sleep(0.05)
    outcome = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        outcome[name] = (proc.returncode, out + err, proc.pid)
    return base, outcome


def test_runs_started_together_get_their_own_complete_records(launched):
    base, outcome = launched
    folders = sorted((base / "together" / "outputs").glob("*/*"))
    assert len(folders) == 2
    seen = {}
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run_dir"] == str(folder) and (folder / "config.yaml").exists()
        assert summary["process"]["finished_at"] and (folder / "fxflow.log").read_text().count("run of recipe") == 1
        seen[summary["process"]["pid"]] = summary["error"]["type"]
    assert seen == {outcome[name][2]: name.upper() for name in SIGNALS}  # each record is its own process's


@pytest.mark.parametrize("name,code", [("sigint", 130), ("sigterm", 143)])
def test_a_signal_mid_transform_records_interrupted_without_a_traceback(launched, name, code):
    base, outcome = launched
    returned, output, pid = outcome[name]
    summaries = [json.loads(p.read_text()) for p in (base / "together" / "outputs").glob("*/*/summary.json")]
    summary = next(s for s in summaries if s["process"]["pid"] == pid)
    assert returned == code, output[-2000:]
    assert summary["status"] == "interrupted" and summary["error"]["stage"] == "sleep"
    assert summary["error"]["type"] == name.upper() and "Traceback" not in output
    assert f"interrupted by {name.upper()}" in output
