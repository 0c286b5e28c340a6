"""Code execution and file writes from config alone, and trust the user can see (issue 15).

Three ways a config could run code that the target policy did not judge, each tried as an
attacker would and each refused before anything is imported:

- names that start like a torch function but resolve to a loader, compiler or file reader
  (`torch.nn.functional.torch.ops.load_library`), as graph functions and replacement targets,
  and method chains that leave the tensor (`x.numpy().tofile(path)`): run in-process with the
  hostile corpus's fixture (tests/test_hostile_configs.py: planted package, spawners recorded,
  an empty working folder);
- `hydra:` settings (callbacks, launcher, logging, env, search path, path-like names), from an
  override, a file under ./fxflow_conf or --config-dir, or the primary config: Hydra acts on them
  before any job runs, so they are refused by the entry point, here called in-process;
- trust: where it came from is said and recorded; show/validate import no trusted code; trust is
  looked for from the working folder, not above a run folder elsewhere.

One process test runs the command in a folder holding a planted `networkx.py`, a `hydra:` block
under fxflow_conf/ and a pyproject.toml trusting a planted package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_hostile_configs import PLANTED, assert_refused, guarded  # noqa: F401 - the corpus's fixture, reused

# ----------------------------------------------------------------------------- graph functions

# Each resolves (attribute by attribute from an allowed root) to something that loads, compiles,
# reads or writes; or would need an import to resolve at all.
CHAINS = [
    "torch.nn.functional.torch.ops.import_module", "torch.nn.functional.torch.ops.load_library",
    "torch.nn.functional.torch.from_file", "torch.nn.functional.torch.compile", "torch.nn.functional.torch.load",
    "torch.nn.functional.torch.save", "torch.nn.functional.torch.jit.load", "torch.nn.functional.torch.hub.load",
    "torch.utils.cpp_extension.load", "torch.nn.functional.torch.package.PackageImporter", "torch.ops.aten.from_file",
    "torch.Tensor.numpy", "torch.nn.functional.torch.manual_seed", "operator.call", "math.pi", "torch.onnx.export",
]
TENSOR_METHODS_OUTSIDE = ["numpy", "tofile", "tolist", "storage", "untyped_storage", "register_hook", "apply_",
                          "__reduce_ex__"]
DUMP = ("+transforms.dump={_target_:fxflow.transforms.replace_targets.ReplaceTargets,old_op:call_method,old_target:numpy,"
        "new_op:call_method,new_target:tofile}")


@pytest.mark.parametrize("name", CHAINS)
def test_a_replacement_target_is_judged_by_what_it_resolves_to(guarded, name):
    assert_refused(guarded("replace_target_nodes_with", [f"transforms.replace.new_target={name}"]),
                   "transforms.replace.new_target")


@pytest.mark.parametrize("method", TENSOR_METHODS_OUTSIDE)
def test_a_replacement_method_stays_on_the_tensor(guarded, method):
    result = guarded("replace_target_nodes_with", ["transforms.replace.new_op=call_method",
                                                   f"transforms.replace.new_target={method}"])
    assert_refused(result, "transforms.replace.new_target")


def test_two_replace_stages_cannot_chain_a_call_into_a_file_write(guarded):
    result = guarded("replace_target_nodes_with", ["transforms.replace.new_op=call_method",
                                                   "transforms.replace.new_target=numpy", DUMP])
    assert_refused(result, "transforms.replace.new_target")
    assert "transforms.dump.new_target" in result["summary"]["error"]["message"]


@pytest.mark.parametrize("name", ["torch.nn.functional.torch.ops.load_library", "torch.ops.import_module",
                                  "torch.onnx.export", "torch.nn.functional.torch.save"])
def test_a_probed_operator_is_judged_by_what_it_resolves_to(guarded, name):
    assert_refused(guarded("normalize_quantized_eb", [f"transforms.eb.target={name}"]), "transforms.eb.target")


@pytest.mark.parametrize("overrides", [["transforms.replace.new_target=torch.mul"],
                                       ["transforms.replace.new_op=call_method", "transforms.replace.new_target=mul"]])
def test_tensor_functions_and_methods_still_replace(guarded, overrides):
    """The allow list is not a refusal of everything: torch.mul and Tensor.mul compute what Mul does."""
    result = guarded("replace_target_nodes_with", overrides)
    assert result["summary"]["status"] == "passed", result["summary"]["error"]


# ----------------------------------------------------------------------------- hydra settings

CALLBACK = "hydra_evil_callback"
CALLBACK_SOURCE = '''
import os, pathlib
pathlib.Path(os.environ["PLANTED_MARKER"]).write_text("imported")
from hydra.experimental.callback import Callback
class Hook(Callback):
    def on_run_start(self, config, **kwargs):
        pathlib.Path(os.environ["PLANTED_MARKER"]).write_text("ran")
'''


@pytest.fixture
def launch(tmp_path, monkeypatch, capsys):
    """Call the entry point in this process from an empty working folder, with a planted package
    (it writes a marker when imported) on the path; returns (exit code, stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    from fxflow import cli, paths

    work, plant = tmp_path / "work", tmp_path / "plant"
    work.mkdir()
    (plant / CALLBACK).mkdir(parents=True)
    (plant / CALLBACK / "__init__.py").write_text(CALLBACK_SOURCE)
    marker = tmp_path / "marker"
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(plant))
    monkeypatch.setenv("PLANTED_MARKER", str(marker))
    monkeypatch.delenv("FXFLOW_TRUSTED_PACKAGES", raising=False)
    monkeypatch.delenv("FXFLOW_OVERWRITE", raising=False)
    monkeypatch.setattr(paths, "_config_dirs", [])  # --config-dir sets them for the process
    monkeypatch.setattr(cli, "_STATUSES", [])

    def run(*argv: str) -> tuple[int, str]:
        GlobalHydra.instance().clear()
        try:
            with pytest.raises(SystemExit) as info:
                cli.main(list(argv))
        finally:
            GlobalHydra.instance().clear()
        return info.value.code, capsys.readouterr().err

    run.work, run.marker, run.root = work, marker, tmp_path  # type: ignore[attr-defined]
    yield run
    sys.modules.pop(CALLBACK, None)


def assert_not_started(launch, code: int, err: str, key: str, origin: str) -> None:
    """Refused before Hydra started: exit 1, one message naming key and origin, nothing imported
    or written, no record anywhere."""
    assert code == 1, err
    assert key in err and origin in err, err
    assert "Traceback" not in err
    assert not launch.marker.exists() and CALLBACK not in sys.modules
    assert not list(launch.root.rglob("summary.json")) and not (launch.work / "outputs").exists()
    assert not list(launch.root.rglob("written*"))


CALLBACK_OVERRIDES = [
    ("+hydra.callbacks.a={_target_:builtins.open,file:written,mode:w}", "hydra.callbacks.a._target_"),
    (f"+hydra.callbacks.a={{_target_:{CALLBACK}.Hook}}", "hydra.callbacks.a._target_"),
    ("+hydra.callbacks.a={_target_:torch.hub.load,repo_or_dir:.,model:x,source:local}", "hydra.callbacks.a._target_"),
    ("+hydra.callbacks.a={_target_:fxflow.record.run_dir.FreshRunDir,x:{_target_:builtins.exec,source:'1'}}",
     "hydra.callbacks.a.x._target_"),
    ("+hydra.callbacks.a={_target_:fxflow.record.run_dir.FreshRunDir,_args_:[1]}", "hydra.callbacks.a._args_"),
    ("hydra.callbacks.sweep_summary._target_=fxflow.pipeline.run_job", "hydra.callbacks.sweep_summary._target_"),
    # the guard that keeps a run out of a user's folder cannot be switched off or swapped
    ("hydra.callbacks.fresh_run_dir=null", "hydra.callbacks.fresh_run_dir"),
    ("hydra.callbacks.fresh_run_dir._target_=fxflow.record.sweep.SweepSummary", "hydra.callbacks.fresh_run_dir"),
    ("+hydra.launcher.extra={_target_:builtins.open,file:written,mode:w}", "hydra.launcher.extra._target_"),
    ("hydra.launcher._target_=builtins.exec", "hydra.launcher._target_"),
    ("+hydra.job.extra={_target_:builtins.open,file:written}", "hydra.job.extra._target_"),
    ("hydra.job_logging.handlers.file.filename=written.log", "hydra.job_logging.handlers.file.filename"),
    ("+hydra.job_logging.handlers.file.stream=ext://os.system", "hydra.job_logging.handlers.file.stream"),
    ("hydra.job_logging.handlers.file.class=subprocess.Popen", "hydra.job_logging.handlers.file.class"),
    (f"+hydra.job.env_set.FXFLOW_TRUSTED_PACKAGES={CALLBACK}", "hydra.job.env_set.FXFLOW_TRUSTED_PACKAGES"),
    ("+hydra.job.env_set.LD_PRELOAD=written.so", "hydra.job.env_set.LD_PRELOAD"),
    ("hydra.job.name=../../written", "hydra.job.name"),
    ("hydra.output_subdir=../../written", "hydra.output_subdir"),
    (f"hydra.searchpath=[pkg://{CALLBACK}]", "hydra.searchpath.0"),
]


@pytest.mark.parametrize("override,key", CALLBACK_OVERRIDES, ids=[c[0] for c in CALLBACK_OVERRIDES])
def test_a_hydra_override_outside_the_policy_starts_nothing(launch, override, key):
    code, err = launch("recipe=replace_target_nodes_with", override)
    assert_not_started(launch, code, err, key, f"command line ({override}")


def test_removing_the_run_folder_guard_starts_nothing(launch):
    """Deleting a key leaves nothing to trace its origin to: the refusal names the key and what is accepted."""
    code, err = launch("recipe=replace_target_nodes_with", "~hydra.callbacks.fresh_run_dir")
    assert_not_started(launch, code, err, "hydra.callbacks.fresh_run_dir", "fxflow.record.run_dir.FreshRunDir")


def test_a_sweep_subdir_that_leaves_the_sweep_folder_starts_nothing(launch):
    code, err = launch("-m", "recipe=replace_target_nodes_with", "seed=0,1", "hydra.sweep.subdir=../written")
    assert_not_started(launch, code, err, "hydra.sweep.subdir", "command line (hydra.sweep.subdir=../written)")


@pytest.mark.parametrize("flag", [["-cn", "evil"], ["--config-path", "/tmp"], ["--experimental-rerun", "x.pickle"]])
def test_hydra_flags_that_pick_another_primary_config_are_refused(launch, flag):
    code, err = launch(*flag, "recipe=replace_target_nodes_with")
    assert code == 1 and flag[0] in err and "--config-dir" in err and not launch.marker.exists()


HOOK_BLOCK = f"""# @package _global_
hydra:
  callbacks:
    hook: {{_target_: {CALLBACK}.Hook}}
"""
LOGGING_BLOCK = f"""# @package _global_
hydra:
  job_logging:
    handlers:
      file: {{"()": {CALLBACK}.Hook}}
"""


def test_a_hydra_block_in_a_users_group_file_starts_nothing(launch):
    (launch.work / "fxflow_conf" / "model").mkdir(parents=True)
    (launch.work / "fxflow_conf" / "model" / "hooked.yaml").write_text(HOOK_BLOCK)
    code, err = launch("recipe=replace_target_nodes_with", "model=hooked")
    assert_not_started(launch, code, err, "hydra.callbacks.hook._target_", "fxflow_conf/model/hooked.yaml")


def test_a_hydra_block_reached_only_by_a_sweep_starts_nothing(launch):
    """--config-dir's file is chosen by one job of a sweep: each swept option's files are checked."""
    folder = launch.root / "mine"
    (folder / "devices").mkdir(parents=True)
    (folder / "devices" / "logged.yaml").write_text(LOGGING_BLOCK)
    code, err = launch("-m", "--config-dir", str(folder), "recipe=replace_target_nodes_with", "devices=two_gpu,logged")
    assert_not_started(launch, code, err, "hydra.job_logging.handlers.file.()", str(folder / "devices" / "logged.yaml"))


def test_a_search_path_in_the_users_primary_config_imports_nothing(launch):
    shipped = (REPO / "conf" / "config.yaml").read_text()
    (launch.work / "fxflow_conf").mkdir()
    (launch.work / "fxflow_conf" / "config.yaml").write_text(
        shipped.replace("hydra:\n", f"hydra:\n  searchpath: ['pkg://{CALLBACK}']\n", 1))
    code, err = launch("recipe=replace_target_nodes_with")
    assert_not_started(launch, code, err, "hydra.searchpath.0", "fxflow_conf/config.yaml")


def test_a_run_records_its_hydra_overrides(launch):
    run_dir = launch.root / "run"
    code, err = launch("recipe=replace_target_nodes_with", "report.pictures=false", f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and summary["status"] == "passed", err
    assert f"hydra.run.dir={run_dir}" in summary["hydra_overrides"]
    assert summary["overrides"] == ["recipe=replace_target_nodes_with", "report.pictures=false"]
    assert summary["trusted_packages"] == {} and os.listdir(launch.work) == []


# ----------------------------------------------------------------------------- trust


def _trusting(folder: Path, package: str) -> Path:
    (folder / "pyproject.toml").write_text(f'[tool.fxflow]\ntrusted_packages = ["{package}"]\n')
    return folder / "pyproject.toml"


def test_review_verbs_say_where_trust_came_from_and_import_nothing(launch):
    pyproject = _trusting(launch.work, CALLBACK)
    model = f"equivalence.reference._target_={CALLBACK}.Model"
    code, err = launch("validate", "replace_target_nodes_with", model)
    assert code == 0, err
    assert f"trusting {CALLBACK} from {pyproject}" in err and "import nothing" in err
    assert not launch.marker.exists() and CALLBACK not in sys.modules


def test_a_run_says_where_trust_came_from_and_records_it(launch):
    pyproject = _trusting(launch.work, CALLBACK)
    run_dir = launch.root / "run"
    code, err = launch("recipe=replace_target_nodes_with", "report.pictures=false", f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and err.count(f"trusting {CALLBACK} from {pyproject}") == 1, err
    assert summary["trusted_packages"] == {CALLBACK: f"{pyproject} [tool.fxflow] trusted_packages"}


def test_trust_is_looked_for_from_the_working_folder_not_above_the_run_folder(launch):
    """With hydra.job.chdir=true the job runs in the run folder; a pyproject.toml above it (someone
    else's checkout) trusts nothing."""
    elsewhere = launch.root / "checkout"
    elsewhere.mkdir()
    _trusting(elsewhere, CALLBACK)
    run_dir = elsewhere / "run"
    code, err = launch("recipe=replace_target_nodes_with", f"equivalence.reference._target_={CALLBACK}.Hook",
                       f"hydra.run.dir={run_dir}", "hydra.job.chdir=true")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 1 and summary["status"] == "error" and "trusting" not in err
    assert "equivalence.reference._target_" in summary["error"]["message"]
    assert not launch.marker.exists() and summary["trusted_packages"] == {}


def test_the_working_folder_comes_off_the_front_of_the_path_and_back_only_at_the_end(tmp_path, monkeypatch):
    from fxflow.config.trust import user_code_on_path, working_folder_off_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *[p for p in sys.path if p not in ("", str(tmp_path))]])
    before = list(sys.path)
    with working_folder_off_path():
        assert str(tmp_path) not in sys.path
        user_code_on_path()  # a trusted package is about to be imported
        assert sys.path[-1] == str(tmp_path) and sys.path.count(str(tmp_path)) == 1
    assert sys.path == before


# ----------------------------------------------------------------------------- as a process

NETWORKX = 'import os, pathlib\npathlib.Path(os.environ["PLANTED_MARKER"] + ".networkx").write_text("x")\n'
PLANTED_MODEL = '''import os, pathlib
pathlib.Path(os.environ["PLANTED_MARKER"] + ".package").write_text("x")
import torch
class Mul(torch.nn.Module):
    def forward(self, a, b):
        return a * b
'''


@pytest.mark.process
def test_a_folder_with_planted_code_runs_none_of_it_on_review_and_says_where_trust_came_from(tmp_path):
    work = tmp_path / "work"
    (work / "fxflow_conf" / "model").mkdir(parents=True)
    (work / "networkx.py").write_text(NETWORKX)
    (work / "their_models").mkdir()
    (work / "their_models" / "__init__.py").write_text(PLANTED_MODEL)
    pyproject = _trusting(work, "their_models")
    (work / "fxflow_conf" / "model" / "hooked.yaml").write_text(HOOK_BLOCK.replace(CALLBACK, "their_models"))
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLANTED_MARKER": str(marker)}
    env.pop("FXFLOW_TRUSTED_PACKAGES", None)
    reference = "equivalence.reference._target_=their_models.Mul"

    def fxflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fxflow", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)

    for args in (["ls"], ["show", "replace_target_nodes_with", reference],
                 ["validate", "replace_target_nodes_with", reference]):
        proc = fxflow(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not list(tmp_path.glob("marker*")), args  # neither networkx.py nor the trusted package ran
    hooked = fxflow("recipe=replace_target_nodes_with", "model=hooked")
    assert hooked.returncode == 1 and "hydra.callbacks.hook._target_" in hooked.stderr
    assert "fxflow_conf/model/hooked.yaml" in hooked.stderr and not list(tmp_path.glob("marker*"))
    ran = fxflow("recipe=replace_target_nodes_with", reference, "report.pictures=false",
                 f"hydra.run.dir={tmp_path / 'run'}")
    assert ran.returncode == 0 and f"trusting their_models from {pyproject}" in ran.stderr, ran.stdout + ran.stderr
    assert marker.with_suffix(".package").exists() and not marker.with_suffix(".networkx").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trusted_packages"] == {"their_models": f"{pyproject} [tool.fxflow] trusted_packages"}
