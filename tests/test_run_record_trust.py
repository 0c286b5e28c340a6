"""Every run leaves a true record: `running` first, a final status whatever breaks, interrupts
as `interrupted`, the log with stages and tracebacks, record folders that are never shared or
silently reused, broken recipe files reported by file and line, trusted packages from outside
the config only."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from conftest import compose_cached
from fxflow.compose import compose_recipe
from fxflow.config.targets import TargetPolicy
from fxflow.interrupts import Interrupted
from fxflow.pipeline import RecordError, run_job
from fxflow.paths import config_dirs
from fxflow.recipes import recipe_files
from fxflow.record import run_dir as run_dirs
from fxflow.record.writer import RunRecord
from fxflow.reports.console import print_outcome, terminal_stream

FIXTURES = "tests.fixtures_models"
MISBEHAVING = f"{FIXTURES}.misbehaving"


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_summary_says_running_while_the_run_works_and_the_log_has_its_stages(run_recipe, trust):
    trust(FIXTURES)
    run = run_recipe("replace_target_nodes_with", f"+transforms.peek={{_target_:{MISBEHAVING}.PeekSummary}}")
    assert run.summary["status"] == "passed", run.summary["error"]
    assert run.metrics["peek.status"] == "running" and run.metrics["peek.pid"] == os.getpid()
    assert f"process {os.getpid()}" in run.metrics["peek.incomplete"]
    assert "incomplete" not in run.summary and run.summary["process"]["finished_at"]
    log = (run.run_dir / "fxflow.log").read_text()
    for line in ("step build: started", "step trace: done", "step transform.replace: done", "run finished: passed"):
        assert line in log


def test_interrupt_mid_transform_is_recorded_then_raised(tmp_path, trust):
    trust(FIXTURES)
    overrides = [f"+transforms.stop={{_target_:{MISBEHAVING}.Interrupt}}"]
    cfg, files = compose_cached("replace_target_nodes_with", overrides)
    with pytest.raises(Interrupted) as info:
        run_job(cfg, tmp_path / "run", overrides, files)
    assert info.value.exit_code == 130
    summary = _summary(tmp_path / "run")
    assert summary["status"] == "interrupted"
    assert summary["error"] == {"stage": "stop", "type": "SIGINT", "message": "interrupted by SIGINT during step stop"}
    assert "interrupted by SIGINT" in (tmp_path / "run" / "fxflow.log").read_text()


def test_reference_that_raises_is_an_error_naming_the_key_with_its_text_intact(run_recipe, trust):
    trust(FIXTURES)
    run = run_recipe("replace_target_nodes_with", f"equivalence.reference._target_={MISBEHAVING}.RaisingReference")
    error = run.summary["error"]
    assert run.summary["status"] == "error" and error["stage"] == "checks"
    assert "equivalence.reference" in error["message"] and "reference [bold]exploded[/] on purpose" in error["message"]
    assert "Traceback" in (run.run_dir / "fxflow.log").read_text()
    printed = io.StringIO()
    print_outcome(run.state, run.run_dir, Console(file=printed, width=300, color_system=None))
    assert "[bold]exploded[/]" in printed.getvalue()


def test_input_mismatch_names_model_inputs_and_torchs_first_line(run_recipe, capsys):
    # torch's sizing (ShapeProp) wraps the error and prints a traceback; fxflow's own reports it plainly
    run = run_recipe("large_node_error", "model.inputs.a.shape=[3,5]", "transforms.size_nodes.method=torch")
    message = run.summary["error"]["message"]
    assert "model.inputs" in message and "mat1 and mat2 shapes cannot be multiplied (3x5 and 4x4)" in message
    assert "Original traceback" not in message
    assert "Traceback" not in capsys.readouterr().err  # torch's ShapeProp prints one; it goes to fxflow.log
    assert "ShapeProp" in (run.run_dir / "fxflow.log").read_text()


def test_disk_full_while_writing_graphs_is_an_error_with_a_complete_summary(run_recipe, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("fxflow.record.stage_files.write_stage_graph", full)
    run = run_recipe("replace_target_nodes_with")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "record"
    assert "hydra.run.dir" in run.summary["error"]["message"] and "No space left" in run.summary["error"]["message"]
    assert {"checks", "timings", "metrics", "versions", "process"} <= set(run.summary)
    assert "OSError" in (run.run_dir / "fxflow.log").read_text()


def test_a_summary_that_cannot_be_encoded_falls_back_to_a_minimal_one(tmp_path, monkeypatch):
    original = RunRecord.write_json

    def picky(self, relative, value):
        if "metrics" in value and value.get("status") != "running":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, relative, value)

    monkeypatch.setattr(RunRecord, "write_json", picky)
    cfg, files = compose_cached("replace_target_nodes_with", [])
    state = run_job(cfg, tmp_path / "run", [], files)
    summary = _summary(tmp_path / "run")
    assert state.status == "error" and summary["status"] == "error" and summary["error"]["stage"] == "record"
    assert "No space left" in summary["error"]["message"]


def test_no_summary_at_all_raises_record_error(tmp_path, monkeypatch):
    def broken(self, relative, value):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(RunRecord, "write_json", broken)
    cfg, files = compose_cached("replace_target_nodes_with", [])
    with pytest.raises(RecordError, match="hydra.run.dir"):
        run_job(cfg, tmp_path / "run", [], files)


def test_a_terminal_that_fails_makes_the_run_an_error(tmp_path):
    def refuse(state, run_dir):
        raise UnicodeEncodeError("ascii", "·", 0, 1, "ordinal not in range(128)")

    cfg, files = compose_cached("replace_target_nodes_with", [])
    state = run_job(cfg, tmp_path / "run", [], files, present=refuse)
    summary = _summary(tmp_path / "run")
    assert state.status == summary["status"] == "error" and summary["error"]["stage"] == "print"
    assert "stdout" in summary["error"]["message"]


def test_summary_prints_on_an_ascii_stdout(run_recipe, monkeypatch):
    run = run_recipe("replace_target_nodes_with")
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    assert terminal_stream() is not ascii_out
    print_outcome(run.state, run.run_dir)
    ascii_out.flush()
    assert b"status: passed" in raw.getvalue()


def test_an_empty_check_list_with_a_reason_is_recorded(run_recipe):
    run = run_recipe("replace_target_nodes_with", "equivalence.stages=[]", "+equivalence.skip_reason='reviewed by hand'")
    skip = run.check("equivalence")
    assert skip["kind"] == "skip" and "reviewed by hand" in skip["detail"]
    assert not any(c["kind"] == "equivalence" for c in run.summary["checks"])
    assert run.summary["status"] == "passed"  # the expected figure still compared something
    alone = run_recipe("replace_target_nodes_with", "equivalence.stages=[]", "+equivalence.skip_reason=x",
                       "~expect.metrics.replace")
    assert alone.summary["status"] == "failed"  # a skip alone compares nothing, so it cannot pass


def test_a_sweep_where_one_job_crashes_outside_a_stage_summarises_every_job(tmp_path, trust, monkeypatch, capsys):
    """The command's own sweep, in this process: job 1's reference raises when called."""
    from fxflow import cli

    trust(FIXTURES)
    sweep = tmp_path / "sweep"
    monkeypatch.setattr(sys, "argv", ["fxflow", "-m", "recipe=replace_target_nodes_with", "report.pictures=false",
                                      "equivalence.reference._target_=fxflow.models.partition_examples.Mul,"
                                      f"{MISBEHAVING}.RaisingReference", f"hydra.sweep.dir={sweep}"])
    monkeypatch.setattr(cli, "_STATUSES", [])
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # Hydra configures logging per job; undo it after
    monkeypatch.setattr(root, "level", root.level)
    with pytest.raises(SystemExit) as info:
        cli.main()
    output = capsys.readouterr()
    assert info.value.code == 1 and "Traceback" not in output.out + output.err
    rows = json.loads((sweep / "sweep_summary.json").read_text())["jobs"]
    assert [row["status"] for row in sorted(rows, key=lambda r: r["job"])] == ["passed", "error"]
    assert _summary(sweep / "0")["status"] == "passed"
    crashed = _summary(sweep / "1")
    assert crashed["status"] == "error" and crashed["error"]["stage"] == "checks"
    assert "equivalence.reference" in crashed["error"]["message"] and crashed["process"]["finished_at"]


# ----------------------------------------------------------------------------- recipe files


@pytest.fixture
def recipe_folder(tmp_path):
    """A user config folder (as --config-dir names it) with one good and three broken recipes."""
    folder = tmp_path / "user_conf" / "recipes"
    folder.mkdir(parents=True)
    good = (Path(__file__).resolve().parents[1] / "recipes" / "replace_target_nodes_with.yaml").read_text()
    (folder / "trust_good.yaml").write_text(good.replace("recipe: replace_target_nodes_with", "recipe: trust_good"))
    (folder / "trust_broken.yaml").write_text("# @package _global_\nrecipe: trust_broken\ntransforms: [a\n  b: c\n")
    (folder / "trust_hydra.yaml").write_text("# @package _global_\nrecipe: trust_hydra\nhydra:\n  run: {dir: /tmp/x}\n")
    (folder / "trust_list.yaml").write_text("- a\n- b\n")
    with config_dirs([folder.parent]):
        yield folder


def test_broken_recipe_files_are_reported_by_file_and_line_and_others_still_run(recipe_folder, tmp_path):
    assert {"trust_good", "trust_broken", "trust_hydra", "trust_list"} <= set(recipe_files())
    for name, where in [("trust_broken", "trust_broken.yaml:4"), ("trust_hydra", "trust_hydra.yaml:3"),
                        ("trust_list", "trust_list.yaml")]:
        cfg, files = compose_recipe(name)
        broken = run_job(cfg, tmp_path / name, [], files)
        assert broken.status == "error" and broken.error["stage"] == "config"
        assert broken.error["problems"][0].startswith("recipe:") and where in broken.error["message"]
    cfg, files = compose_recipe("trust_good", ["report.pictures=false"])
    assert run_job(cfg, tmp_path / "good", [], files).status == "passed"


# ----------------------------------------------------------------------------- run folders


def test_run_folder_names_are_path_safe_and_unique_per_process():
    assert run_dirs.slug("../../etc/passwd") == "etc_passwd"
    assert run_dirs.slug("[bold]x") == "bold_x"
    assert run_dirs.run_id() == run_dirs.run_id() and run_dirs.run_id().startswith(str(os.getpid()))
    run_dirs.register_resolvers()
    config = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "config.yaml")
    template = OmegaConf.to_container(config, resolve=False)["hydra"]["run"]["dir"]
    first = OmegaConf.create({"recipe": "../up", "dir": template})
    assert "/../" not in first.dir and first.dir.endswith(f"-up-{run_dirs.run_id()}")


def test_a_folder_that_holds_a_record_is_refused_unless_overwrite_is_asked(tmp_path, monkeypatch, capsys):
    old = tmp_path / "old"
    record = RunRecord(old)
    record.write_json("summary.json", {"status": "passed"})
    record.write_text("graphs/00_trace.py", "code")
    record.write_text("partition/r.md", "report")
    config = OmegaConf.create({"hydra": {"run": {"dir": str(old)}}})
    monkeypatch.delenv(run_dirs.OVERWRITE_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        run_dirs.FreshRunDir().on_run_start(config)
    assert info.value.code == 2 and run_dirs.OVERWRITE_ENV in capsys.readouterr().err
    assert (old / "summary.json").exists()
    monkeypatch.setenv(run_dirs.OVERWRITE_ENV, "1")
    run_dirs.FreshRunDir().on_run_start(config)
    assert list(old.iterdir()) == []  # the old record is gone (tests/test_hostile_data.py: nothing else ever goes)
    run_dirs.FreshRunDir().on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "new")}}}))


# ----------------------------------------------------------------------------- trusted packages


def test_trusted_packages_come_from_the_environment_and_the_nearest_pyproject(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.fxflow]\ntrusted_packages = ["mymodels", "os", "bad name"]\n')
    policy = TargetPolicy.from_environment(cwd=project / "src", environ={"FXFLOW_TRUSTED_PACKAGES": "lab.nets, subprocess"})
    assert policy.trusted == ("lab.nets", "mymodels")
    assert any("'os'" in entry and "deny list" in entry for entry in policy.ignored)
    assert any("'subprocess'" in entry for entry in policy.ignored) and any("'bad name'" in e for e in policy.ignored)
    assert TargetPolicy.from_environment(cwd=tmp_path, environ={}).trusted == ()
