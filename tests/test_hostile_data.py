"""Hostile cases against the user's data and the truth of records (issue 15): overwriting removes
only what fxflow wrote, a different sweep never replaces another, `fxflow cp` stays inside DEST,
resume needs the same resolved config, and no record says `running` after its process is gone.

Each case runs in this process (the command's entry point with `main(argv)`, or the callback or
function it reaches); the two signal cases need a process group and carry the `process` marker.
Every case checks that the user's files are the same byte for byte and that nothing outside the
folder was written.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import REPO, compose_cached
from fxflow.interrupts import Interrupted
from fxflow.pipeline import RecordError, run_job
from fxflow.record import run_dir as run_dirs
from fxflow.record import writer
from fxflow.record.liveness import shown_status
from fxflow.record.owned import foreign, remove_owned
from fxflow.record.sweep import collect, settle_unfinished
from fxflow.record.writer import MANIFEST, RunRecord
from fxflow.verbs import run_verb

RECIPE = "replace_target_nodes_with"  # a recipe that runs in well under a second


def tree(root: Path) -> dict[str, object]:
    """Everything under root without following links: file bytes, link targets, folders."""
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def user_project(folder: Path) -> Path:
    """A folder of the user's own work: sources, a git folder, data, a config and graphs of theirs."""
    for rel, text in {"src/model.py": "class Net: ...\n", ".git/HEAD": "ref: refs/heads/main\n",
                      "data/train.csv": "x,y\n1,2\n", "config.yaml": "mine: true\n", "graphs/mine.py": "# mine\n"}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def fxflow_main(argv: list[str]) -> int:
    """The command in this process; returns its exit code."""
    from hydra.core.global_hydra import GlobalHydra

    from fxflow.cli import main

    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as info:
            main(list(argv))
    finally:
        GlobalHydra.instance().clear()
    return info.value.code


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The working folder of the command: an empty folder of its own, beside `outside/`."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("precious\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv(run_dirs.OVERWRITE_ENV, raising=False)
    return work


# ------------------------------------------------------------------------------------ overwrite


def test_overwrite_never_deletes_what_a_forged_summary_lists(workdir, tmp_path, monkeypatch, capsys):
    project = user_project(workdir / "project")
    (project / "summary.json").write_text(json.dumps({"status": "passed", "files": {
        "src": ["src/model.py"], ".git": [".git/HEAD"], "data": ["data/train.csv"], "x": ["../../outside/victim.txt"]}}))
    before, outside = tree(project), tree(tmp_path / "outside")
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    code = fxflow_main([f"recipe={RECIPE}", f"hydra.run.dir={project}"])
    err = capsys.readouterr().err
    assert code == 2 and "hydra.run.dir" in err and str(project) in err and ".git" in err
    assert tree(project) == before and tree(tmp_path / "outside") == outside


def test_overwrite_refuses_a_users_config_and_graphs_above_a_record(workdir, monkeypatch, capsys):
    folder = user_project(workdir / "runs")
    RunRecord(folder / "old").write_json("summary.json", {"status": "passed"})  # a real record one level down
    before = tree(folder)
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    assert fxflow_main([f"recipe={RECIPE}", f"hydra.run.dir={folder}"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and "did not write" in err
    assert tree(folder) == before


def test_a_forged_manifest_cannot_reach_outside_or_through_links(workdir, tmp_path):
    outside = tmp_path / "outside"
    (outside / "tree").mkdir()
    (outside / "tree" / "file.txt").write_text("keep me\n")
    folder = workdir / "record"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    (folder / "graphs").symlink_to(outside / "tree")            # a claimed name that is a link to a folder
    (folder / "victim").symlink_to(outside / "victim.txt")     # a claimed name that is a link to a file
    (folder / MANIFEST).write_text(json.dumps({"fxflow_manifest": 1, "claimed": [
        "summary.json", "graphs", "victim", "../outside/victim.txt", str(outside / "victim.txt"), "a/../../x"]}))
    before = tree(outside)
    assert foreign(folder) == []  # the bad entries are dropped, the links are claimed as links
    assert remove_owned(folder) == []
    assert list(folder.iterdir()) == [] and tree(outside) == before  # links removed as links, nothing behind them


def test_a_link_on_the_way_to_a_claimed_file_makes_the_folder_foreign(workdir, tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    folder = workdir / "record"
    folder.mkdir()
    (folder / "sub").symlink_to(outside)
    (folder / MANIFEST).write_text(json.dumps({"fxflow_manifest": 1, "claimed": ["sub/victim.txt"]}))
    before = tree(outside)
    assert foreign(folder) == ["sub"]
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    with pytest.raises(SystemExit) as info:
        run_dirs.FreshRunDir().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(folder)}}}))
    assert info.value.code == 2 and "sub" in capsys.readouterr().err
    remove_owned(folder)  # even asked directly, removal does not go through the link
    assert tree(outside) == before


def test_a_folder_with_other_files_is_refused_without_overwrite_and_hydra_writes_nothing(workdir, capsys):
    project = user_project(workdir / "project")
    before = tree(project)
    assert fxflow_main([f"recipe={RECIPE}", f"hydra.run.dir={project}"]) == 2
    assert "not an fxflow record" in capsys.readouterr().err
    assert tree(project) == before  # no .hydra/, no fxflow.log, no config.yaml over the user's


def test_overwrite_replaces_a_real_record_and_only_while_it_holds_nothing_else(workdir, monkeypatch, capsys):
    run = workdir / "run"
    argv = [f"recipe={RECIPE}", "report.pictures=false", f"hydra.run.dir={run}"]
    assert fxflow_main(argv) == 0
    assert foreign(run) == [] and {".hydra", "fxflow.log", "summary.json", "config.yaml"} <= set(os.listdir(run))
    assert fxflow_main(argv) == 2  # without FXFLOW_OVERWRITE
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    first = json.loads((run / "summary.json").read_text())["process"]["started_at"]
    assert fxflow_main(argv) == 0
    again = json.loads((run / "summary.json").read_text())
    assert again["status"] == "passed" and again["process"]["started_at"] != first and foreign(run) == []
    (run / "notes.txt").write_text("mine\n")
    before = tree(run)
    capsys.readouterr()
    assert fxflow_main(argv) == 2
    assert "notes.txt" in capsys.readouterr().err and tree(run) == before


# ---------------------------------------------------------------------------------------- sweeps


def sweep_argv(sweep: Path, *values: str) -> list[str]:
    return ["-m", f"recipe={RECIPE}", "report.pictures=false", *values, f"hydra.sweep.dir={sweep}"]


def test_a_different_sweep_into_a_sweep_folder_is_refused_and_the_same_one_resumes(workdir, monkeypatch, capsys):
    sweep = workdir / "sweep"
    assert fxflow_main(sweep_argv(sweep, "seed=0,1")) == 0
    assert foreign(sweep) == []
    before = tree(sweep)
    capsys.readouterr()
    assert fxflow_main(sweep_argv(sweep, "seed=2,3")) == 2
    err = capsys.readouterr().err
    assert "hydra.sweep.dir" in err and "seed=0,1" in err and "another sweep" in err
    assert tree(sweep) == before  # the earlier jobs are all there, byte for byte
    assert fxflow_main(sweep_argv(sweep, "seed=0,1", "sweep.fail_fast=true")) == 0  # the same sweep: resumed
    assert "passed in an earlier run of this sweep" in capsys.readouterr().out
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [(r["status"], r["earlier"]) for r in rows] == [("passed", True), ("passed", True)]
    (sweep / "1" / "notes.txt").write_text("mine\n")  # the user's file in a job folder
    before = tree(sweep)
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    capsys.readouterr()
    assert fxflow_main(sweep_argv(sweep, "seed=2")) == 2
    assert "1/notes.txt" in capsys.readouterr().err and tree(sweep) == before
    (sweep / "1" / "notes.txt").unlink()
    assert fxflow_main(sweep_argv(sweep, "seed=2")) == 0  # only fxflow's files were there: replaced
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"] and foreign(sweep) == []
    assert json.loads((sweep / "0" / "summary.json").read_text())["overrides"][-1] == "seed=2"


def test_resume_runs_again_a_job_whose_recipe_was_edited_to_fail(workdir, capsys):
    conf = workdir / "fxflow_conf" / "recipes"
    conf.mkdir(parents=True)
    text = (REPO / "recipes" / f"{RECIPE}.yaml").read_text().replace(f"recipe: {RECIPE}", "recipe: mine")
    assert "      replaced: 1" in text
    (conf / "mine.yaml").write_text(text)
    sweep = workdir / "sweep"
    argv = ["-m", "recipe=mine", "report.pictures=false", "expect.strict=true", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert fxflow_main(argv) == 0
    (conf / "mine.yaml").write_text(text.replace("      replaced: 1", "      replaced: 2"))  # now it cannot hold
    capsys.readouterr()
    assert fxflow_main(argv) == 1  # the same overrides, another config: run again, and it fails
    assert "passed in an earlier run" not in capsys.readouterr().out
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [r["status"] for r in rows] == ["failed", "failed"] and not any(r["earlier"] for r in rows)
    assert "replaced: 2" in (sweep / "0" / "config.yaml").read_text()


# ------------------------------------------------------------------------------------------- cp


def test_cp_refuses_a_name_that_is_a_path(workdir, tmp_path):
    before = tree(tmp_path)
    for name in ("../../x", "a/b", "..", "/tmp/x", ""):
        code = run_verb(["cp", RECIPE, "dest", "--name", name])
        assert code == 2
    assert tree(tmp_path) == before  # nothing written anywhere, DEST not even created


@pytest.mark.parametrize("link", ["recipes/mine.yaml", "recipes", "model"])
def test_cp_force_never_writes_through_a_link(workdir, tmp_path, link, capsys):
    outside = tmp_path / "outside"
    dest = workdir / "dest"
    (dest / Path(link).parent).mkdir(parents=True, exist_ok=True)
    (dest / link).symlink_to(outside / "victim.txt" if link.endswith(".yaml") else outside)
    before = tree(outside)
    assert run_verb(["cp", RECIPE, str(dest), "--name", "mine", "--force"]) == 2
    out = capsys.readouterr().out
    assert "symbolic link" in out and link.split("/")[0] in out
    assert tree(outside) == before


def test_cp_force_replaces_a_hard_link_instead_of_writing_through_it(workdir, tmp_path):
    dest = workdir / "dest"
    (dest / "recipes").mkdir(parents=True)
    os.link(tmp_path / "outside" / "victim.txt", dest / "recipes" / "mine.yaml")
    assert run_verb(["cp", RECIPE, str(dest), "--name", "mine", "--force"]) == 0
    assert (tmp_path / "outside" / "victim.txt").read_text() == "precious\n"
    assert "recipe: mine" in (dest / "recipes" / "mine.yaml").read_text()


def test_cp_without_force_keeps_a_link_and_writes_nothing_through_it(workdir, tmp_path):
    dest = workdir / "dest"
    (dest / "recipes").mkdir(parents=True)
    (dest / "recipes" / "mine.yaml").symlink_to(tmp_path / "outside" / "victim.txt")
    assert run_verb(["cp", RECIPE, str(dest), "--name", "mine"]) == 0
    assert (tmp_path / "outside" / "victim.txt").read_text() == "precious\n"
    assert os.readlink(dest / "recipes" / "mine.yaml") == str(tmp_path / "outside" / "victim.txt")


# ------------------------------------------------------------------------- records never lie


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def running_record(folder: Path, pid: int, started: datetime, host: str | None = None, **extra) -> Path:
    RunRecord(folder).write_json("summary.json", {
        "recipe": RECIPE, "status": "running", "metrics": {}, "checks": [], **extra,
        "process": {"pid": pid, "host": host or socket.gethostname(), "started_at": started.isoformat()}})
    return folder


def test_a_running_record_whose_process_is_gone_reads_abandoned(tmp_path):
    now = datetime.now(timezone.utc)
    gone = json.loads((running_record(tmp_path / "a", dead_pid(), now) / "summary.json").read_text())
    assert shown_status(gone) == "abandoned"
    assert shown_status({**gone, "process": {**gone["process"], "pid": os.getpid()}}) == "running"  # this one runs
    reused = {**gone, "process": {**gone["process"], "pid": os.getpid(),
                                  "started_at": (now - timedelta(days=400)).isoformat()}}
    assert shown_status(reused) == "abandoned"  # the pid is alive, but it is a process started after the run
    elsewhere = {**gone, "process": {**gone["process"], "host": "another-host.invalid"}}
    assert shown_status(elsewhere) == "running"  # cannot be checked from here


def test_the_sweep_summary_and_diff_show_abandoned(tmp_path):
    now = datetime.now(timezone.utc)
    running_record(tmp_path / "sweep" / "0", dead_pid(), now, overrides=["seed=0"])
    rows = collect(tmp_path / "sweep", [["seed=0"]])
    assert [r["status"] for r in rows] == ["abandoned"]
    running_record(tmp_path / "b", os.getpid(), now)
    import io

    from rich.console import Console

    out = io.StringIO()
    assert run_verb(["diff", str(tmp_path / "sweep" / "0"), str(tmp_path / "b")], Console(file=out, width=200)) == 0
    assert "(abandoned)" in out.getvalue() and "(running)" in out.getvalue()


def test_settling_an_unfinished_sweep_marks_dead_jobs_and_leaves_live_ones(tmp_path):
    now = datetime.now(timezone.utc)
    sweep = tmp_path / "sweep"
    running_record(sweep / "0", dead_pid(), now)
    running_record(sweep / "1", os.getpid(), now)
    settled = settle_unfinished(sweep, "interrupted", "the sweep was interrupted by SIGTERM", wait_s=0)
    assert settled == [sweep / "0"]
    first = json.loads((sweep / "0" / "summary.json").read_text())
    assert first["status"] == "interrupted" and "SIGTERM" in first["error"]["message"]
    assert json.loads((sweep / "1" / "summary.json").read_text())["status"] == "running"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["disk_full", "folder_takes_no_new_files"])
def test_a_folder_that_stops_taking_files_ends_the_run_as_error(tmp_path, monkeypatch, code):
    real = writer.tempfile.mkstemp
    made = []

    def mkstemp(*args, **kwargs):
        made.append(kwargs.get("prefix"))
        if len(made) > 3:  # the manifest and the `running` summary got in; then nothing new
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(writer.tempfile, "mkstemp", mkstemp)
    cfg, files = compose_cached(RECIPE, ["report.pictures=false"])
    state = run_job(cfg, tmp_path / "run", [], files)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert state.status == summary["status"] == "error" and summary["error"]["stage"] == "record"
    assert os.strerror(code) in summary["error"]["message"] and "summary.json" in summary["error"]["message"]
    assert summary["process"]["pid"] == os.getpid()


def test_a_summary_that_cannot_be_written_at_all_is_abandoned_once_its_process_is_gone(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    original = RunRecord.write_json
    monkeypatch.setattr(RunRecord, "write_json", lambda self, rel, value: (
        original(self, rel, value) if value.get("status") == "running" and "metrics" in value else full()))
    monkeypatch.setattr(RunRecord, "rewrite_in_place", full)
    cfg, files = compose_cached(RECIPE, ["report.pictures=false"])
    with pytest.raises(RecordError, match="hydra.run.dir"):
        run_job(cfg, tmp_path / "run", [], files)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "running" and shown_status(summary) == "running"  # this process still runs
    summary["process"]["pid"] = dead_pid()
    assert shown_status(summary) == "abandoned"


def test_an_interrupt_crosses_from_a_worker_process_intact():
    import pickle

    back = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert isinstance(back, Interrupted) and back.exit_code == 143 and back.name == "SIGTERM"


@pytest.mark.process
@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, True), (signal.SIGINT, False)],
                         ids=["sigterm_to_the_group", "sigint_to_the_launcher"])
def test_a_signalled_joblib_sweep_leaves_every_job_interrupted(tmp_path, sig, group):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "FXFLOW_TRUSTED_PACKAGES": "tests.fixtures_models",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fxflow", *sweep_argv(sweep, "seed=0,1"),
         "+transforms.zz={_target_:tests.fixtures_models.misbehaving.Sleep}", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2"],
        cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(glob.glob(str(sweep / "*" / "zz" / "started"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        (os.killpg if group else os.kill)(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig and "Traceback" not in err
    statuses = [json.loads(Path(p).read_text())["status"] for p in sorted(glob.glob(str(sweep / "*" / "summary.json")))]
    assert statuses == ["interrupted", "interrupted"]


DAMAGED_RECORDS = {"a_list": "[1, 2]", "nested_past_the_limit": "[" * 5000 + "]" * 5000, "not_json": "{status",
                   "not_utf8": b"\xff\xfe{}", "a_string": '"passed"'}


@pytest.mark.parametrize("content", DAMAGED_RECORDS.values(), ids=DAMAGED_RECORDS.keys())
def test_a_damaged_job_record_is_skipped_by_every_reader_of_a_sweep_folder(tmp_path, content):
    """A summary.json that is not a JSON object within the limits (planted, or cut short by a full
    disk) counts as no record: the sweep summary shows the job missing, settling and resuming skip
    it, and `fxflow runs` lists the rest; none of them stops with a traceback."""
    from fxflow.record.sweep import earlier_pass

    sweep = tmp_path / "outputs" / "multirun" / "2026-01-01" / "sweep"
    damaged = sweep / "0" / "summary.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(content if isinstance(content, bytes) else content.encode())
    running_record(sweep / "1", dead_pid(), datetime.now(timezone.utc), overrides=["seed=1"])
    rows = collect(sweep, [["seed=0"], ["seed=1"]])
    assert [r["status"] for r in rows] == ["missing", "abandoned"]
    assert settle_unfinished(sweep, "interrupted", "the sweep was interrupted", wait_s=0) == [sweep / "1"]
    assert damaged.read_bytes() == (content if isinstance(content, bytes) else content.encode())  # left as found
    assert earlier_pass(sweep / "0", ["seed=0"], "") is None
    import io

    from rich.console import Console

    out = io.StringIO()
    assert run_verb(["runs", "--outputs", str(tmp_path / "outputs")], Console(file=out, width=200)) == 0
    assert "1 interrupted" in out.getvalue() or "running (1 job records so far)" in out.getvalue(), out.getvalue()
