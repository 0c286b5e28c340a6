"""Hostile files and models that used to hang fxflow or print a traceback (issue 15, "records never
lie, nothing hangs"). Every case is refused fast, with one line naming the file or key:

- YAML alias bombs ("billion laughs"), self-referring aliases and deep nesting in recipes, the
  user's config folders and run records (fxflow.bounded_load);
- a forward that never returns, in tracing, in the equivalence check, or while swallowing every
  exception (timeout_s, fxflow.deadline);
- empty, scalar, null and self-including recipe files; a read-only or full run folder during
  Hydra's own writes; `fxflow diff` on damaged records;
- a forward that raises from its own code is blamed on model.module, not model.inputs.
"""

from __future__ import annotations

import errno
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from rich.console import Console

from conftest import REPO, run_cli, run_in_process
from fxflow import bounded_load
from fxflow.bounded_load import FileRefused, check_yaml, load_json, load_yaml
from fxflow.config.names import BROKEN_RECIPE_KEY

HOSTILE = "tests.fixtures_models.hostile"
ONE_INPUT = "traceable_function_with_nonstandard_name"  # a one-input model (x: float32[4]), no devices


def alias_bomb(levels: int = 9) -> str:
    """Nested anchors, each level nine aliases of the one before: ~9**9 values from ~500 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """An empty ./fxflow_conf in a fresh working folder; returns the folder."""
    folder = tmp_path / "fxflow_conf"
    (folder / "recipes").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return folder


HANG = 30.0  # seconds: far above any of these on a loaded machine, far below what a bomb costs (minutes)


def _quick(seconds: float = 1.0):
    """A stopwatch: `with _quick(): ...` fails the test when the block takes `seconds` or more.
    Refusing a hostile file takes milliseconds and is held to 1 s; whole commands that merely
    must not hang (listing every recipe) are held to HANG."""

    class _Watch:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            if exc[0] is None:
                took = time.perf_counter() - self.start
                assert took < seconds, f"took {took:.2f} s"

    return _Watch()


# ----------------------------------------------------------------------------- alias bombs and caps


def test_a_600_byte_alias_bomb_recipe_is_refused_in_well_under_a_second(user_folder):
    from fxflow.recipes import recipe_or_stand_in, unreadable_recipes
    from fxflow.verbs.ls import overview_text

    bomb = user_folder / "recipes" / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 600
    with _quick():
        stand_in = recipe_or_stand_in(bomb)
    reason = str(stand_in[BROKEN_RECIPE_KEY])
    assert str(bomb) in reason and "alias" in reason
    assert "bomb" in unreadable_recipes()
    with _quick(HANG):  # `fxflow ls` and `--help` list every recipe, the bomb included
        listing = overview_text()
    assert "bomb" in listing and "alias" in listing


def test_the_alias_bomb_does_not_stop_other_recipes_or_validate(user_folder):
    from fxflow.compose import compose_recipe
    from fxflow.verbs.validate import check_recipe

    (user_folder / "recipes" / "bomb.yaml").write_text(alias_bomb())
    cfg, _ = compose_recipe(ONE_INPUT)
    assert cfg.recipe == ONE_INPUT
    with _quick(HANG):
        verdict = check_recipe("bomb")
    assert verdict.problems and "bomb.yaml" in verdict.problems[0][0] and "alias" in verdict.problems[0][0]


def test_an_alias_bomb_in_a_user_config_group_is_refused_naming_the_file(user_folder):
    from hydra.errors import ConfigCompositionException

    from fxflow.compose import compose_recipe

    (user_folder / "model").mkdir()
    bomb = user_folder / "model" / "bomb.yaml"
    bomb.write_text(alias_bomb())
    with _quick(HANG), pytest.raises(ConfigCompositionException, match="alias") as info:
        compose_recipe(ONE_INPUT, ["model=bomb"])
    assert str(bomb) in str(info.value)
    with _quick(), pytest.raises(FileRefused, match="alias"):
        load_yaml(bomb)


@pytest.mark.parametrize("text, words", [
    ("a: &a [*a]\n", "contains it"),                                 # a document that contains itself
    ("x: " + "[" * 80 + "]" * 80 + "\n", "nested more than"),         # deeper than MAX_DEPTH
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),     # deeper than Python's stack
    ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than"),  # the scanner is quadratic in it
], ids=["self-containing", "deep", "deeper-than-the-stack", "brackets-by-the-hundred-thousand"])
def test_self_referring_and_deeply_nested_yaml_is_refused(tmp_path, text, words):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with _quick(), pytest.raises(FileRefused, match=words) as info:
        load_yaml(path)
    assert str(path) in str(info.value)


def test_anchors_reused_within_the_limit_still_load(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("base: &b {lr: 0.1, layers: [1, 2, 3]}\nfirst: *b\nsecond: *b\n")
    assert load_yaml(path)["second"] == {"lr": 0.1, "layers": [1, 2, 3]}
    path.write_text('pattern: "' + "[" * 100 + '"  # ' + "{" * 100 + "\nnested: [1, [2, {c: 3}]]\n")
    assert load_yaml(path) == {"pattern": "[" * 100, "nested": [1, [2, {"c": 3}]]}  # quoted and commented: no nesting
    assert check_yaml("", path) is None


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"status": "passed", "pad": "x" * 200}))
    with pytest.raises(FileRefused, match="above the limit of 100 bytes"):
        load_json(path, max_bytes=100)
    monkeypatch.setattr(bounded_load, "MAX_CONFIG_BYTES", 50)
    recipe = tmp_path / "big.yaml"
    recipe.write_text("recipe: big\ndescription: " + "y" * 100 + "\n")
    with pytest.raises(FileRefused, match="big.yaml"):
        bounded_load.read_text(recipe, bounded_load.MAX_CONFIG_BYTES)


def test_deeply_nested_json_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with _quick(), pytest.raises(FileRefused, match="nested"):
        load_json(path)


# ----------------------------------------------------------------------------- recipe files that are no recipe


@pytest.mark.parametrize("name, text, words", [
    ("empty", "", "is empty"),
    ("nothing", "null\n", "is empty"),
    ("scalar", "42\n", "not a int"),
    ("listed", "- a\n- b\n", "not a list"),
    ("itself", "defaults:\n  - itself\n  - _self_\nrecipe: itself\n", "includes the recipe itself (itself -> itself)"),
    ("absolute", "defaults:\n  - /recipe@_here_: absolute\nrecipe: absolute\n", "absolute -> absolute"),
    ("ping", "defaults:\n  - /recipe/pong\nrecipe: ping\n", "ping -> pong -> ping"),
])
def test_a_recipe_file_that_is_no_recipe_is_one_config_error_naming_the_file(user_folder, tmp_path, name, text, words):
    from fxflow.compose import compose_recipe
    from fxflow.pipeline import run_job

    (user_folder / "recipes" / "pong.yaml").write_text("defaults:\n  - /recipe/ping\nrecipe: pong\n")
    (user_folder / "recipes" / f"{name}.yaml").write_text(text)
    with _quick(HANG):
        cfg, files = compose_recipe(name)
        state = run_job(cfg, tmp_path / "run", [f"recipe={name}"], files)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert state.status == "error" and summary["error"]["stage"] == "config"
    assert f"{name}.yaml" in summary["error"]["message"] and words in summary["error"]["message"]


def test_a_config_group_file_that_includes_itself_is_one_line_from_the_command(user_folder, capsys):
    (user_folder / "devices").mkdir()
    (user_folder / "devices" / "loop.yaml").write_text("defaults:\n  - loop\n")
    code, err = _main([f"recipe={ONE_INPUT}", "devices=loop", f"hydra.run.dir={user_folder.parent / 'run'}"], capsys)
    assert code == 1 and "defaults list includes its own file" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- Hydra's own writes


def _main(argv: list[str], capsys) -> tuple[int, str]:
    """fxflow's entry point in this process: (exit code, stderr)."""
    from fxflow import cli

    GlobalHydra.instance().clear()
    try:
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
    finally:
        GlobalHydra.instance().clear()
    return info.value.code, capsys.readouterr().err


def test_a_run_folder_that_cannot_be_created_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").write_text("a file where the folder should be")
    run_dir = tmp_path / "outputs" / "run"
    code, err = _main([f"recipe={ONE_INPUT}", f"hydra.run.dir={run_dir}"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1  # refused before Hydra writes
    assert str(run_dir) in err and "hydra.run.dir" in err


def test_a_full_disk_while_hydra_writes_its_files_is_one_line(tmp_path, monkeypatch, capsys):
    import hydra.core.utils

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hydra.core.utils, "_save_config", full)
    monkeypatch.chdir(tmp_path)
    code, err = _main([f"recipe={ONE_INPUT}", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "No space left on device" in err and "free some space" in err


def test_hydra_full_error_still_gives_the_traceback_to_those_who_ask(tmp_path, monkeypatch, capsys):
    import hydra.core.utils

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hydra.core.utils, "_save_config", full)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    from fxflow import cli

    try:
        with pytest.raises(OSError):
            cli.main([f"recipe={ONE_INPUT}", f"hydra.run.dir={tmp_path / 'run'}"])
    finally:
        GlobalHydra.instance().clear()
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


@pytest.mark.process
@pytest.mark.skipif(os.name != "posix", reason="folder permissions")
def test_read_only_outputs_through_the_real_command_is_one_line_and_nonzero(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: put a file where the run folder's parent should be
        outputs.rmdir()
        outputs.write_text("not a folder")
    else:
        outputs.chmod(0o555)
    try:
        proc, summary = run_cli([f"recipe={ONE_INPUT}"], outputs / "run", cwd=tmp_path)
    finally:
        if outputs.is_dir():
            outputs.chmod(0o755)
    # a file in the way is refused before Hydra writes (2: a usage problem); a folder that takes no
    # files is refused there too or fails at the first write (1), depending on where the OS says no
    assert proc.returncode in ((2,) if os.geteuid() == 0 else (1, 2)) and summary is None, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(outputs / "run") in proc.stderr


# ----------------------------------------------------------------------------- fxflow diff on damaged records


def _diff(a: Path, b: Path) -> tuple[int, str]:
    from fxflow.verbs import run_verb

    out = io.StringIO()
    code = run_verb(["diff", str(a), str(b)], Console(file=out, width=200, color_system=None))
    return code, out.getvalue()


def _record(folder: Path, summary: str, config: str | None = "recipe: x\nseed: 0\n") -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(summary)
    if config is not None:
        (folder / "config.yaml").write_text(config)
    return folder


GOOD = json.dumps({"status": "passed", "metrics": {"a": 1.0}, "checks": [{"name": "eq", "passed": True}]})


@pytest.mark.parametrize("summary, config, file, words", [
    ("{not json", "recipe: x\n", "summary.json", "not valid JSON"),
    ('["a", "list"]', "recipe: x\n", "summary.json", "not a list"),
    ('{"metrics": {}}', "recipe: x\n", "summary.json", "`status` is missing"),
    ('{"status": "passed", "metrics": []}', "recipe: x\n", "summary.json", "`metrics` is not an object"),
    ('{"status": "passed", "checks": [{"name": "eq"}]}', "recipe: x\n", "summary.json", "`checks`"),
    (GOOD, "- just\n- a list\n", "config.yaml", "not a list"),
    (GOOD, "a: [\n", "config.yaml", "config.yaml:2"),
    (GOOD, alias_bomb(), "config.yaml", "alias"),
])
def test_diff_of_a_damaged_record_is_one_line_naming_the_file(tmp_path, summary, config, file, words):
    good = _record(tmp_path / "good", GOOD)
    bad = _record(tmp_path / "bad", summary, config)
    with _quick(HANG):
        code, out = _diff(good, bad)
    assert code == 2 and "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert str(bad / file) in out and words in out


def test_diff_shows_markup_in_a_record_as_written(tmp_path):
    a = _record(tmp_path / "a", json.dumps({"status": "passed [/]", "metrics": {"m[/]": "[bold]x"}}),
                "note: '[/] closing'\n")
    b = _record(tmp_path / "b", json.dumps({"status": "[red]failed", "metrics": {"m[/]": "y"}}), "note: other\n")
    code, out = _diff(a, b)
    assert code == 0
    assert "(passed [/])" in out and "([red]failed)" in out
    assert "[/] closing" in out and "[bold]x" in out and "m[/]" in out


# ----------------------------------------------------------------------------- timeout_s


@pytest.fixture
def hostile_model(trust):
    trust("tests.fixtures_models")


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs SIGALRM")
@pytest.mark.parametrize("model, stage, words", [
    ("SpinsForever", "trace", "trace (tracer._target_) ran longer than timeout_s=1"),
    ("SwallowsEverything", "trace", "trace (tracer._target_) ran longer than timeout_s=1"),
    ("SpinsWhenEager", "trace", "the equivalence check of stage trace (equivalence) ran longer than timeout_s=1"),
])
def test_a_forward_that_never_returns_ends_as_error_after_timeout_s(hostile_model, tmp_path, model, stage, words):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("stages are stopped only in the main thread")
    with _quick(HANG):
        run = run_in_process(ONE_INPUT, [f"model.module._target_={HOSTILE}.{model}", "tracer=symbolic",
                                         "timeout_s=1"], tmp_path / "run")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == stage
    assert run.summary["error"]["type"] == "StageTimeout" and words in run.summary["error"]["message"]
    assert "raise it" in run.summary["error"]["message"]


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs SIGALRM")
def test_the_diagnosis_after_a_failed_trace_is_bounded_too(hostile_model, tmp_path):
    """A trace that fails sends the runner to call the eager model (to blame inputs or module);
    a model that then never returns leaves the trace's own message."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("stages are stopped only in the main thread")
    with _quick(HANG):
        run = run_in_process(ONE_INPUT, [f"model.module._target_={HOSTILE}.UntraceableAndSpinsWhenEager",
                                         "tracer=symbolic", "timeout_s=1"], tmp_path / "run")
    assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "trace"
    assert "cannot be traced" in run.summary["error"]["message"]


def test_timeout_s_in_config_yaml_equals_the_schema_default_and_bad_values_are_refused(run_recipe):
    from fxflow.config.schema import RunConfig

    assert OmegaConf.load(REPO / "conf" / "config.yaml").timeout_s == RunConfig.model_fields["timeout_s"].default
    for value in ("0", "-1", "inf", "abc", "100000"):
        run = run_recipe(ONE_INPUT, f"timeout_s={value}")
        assert run.summary["status"] == "error" and run.summary["error"]["stage"] == "config"
        assert "timeout_s" in run.summary["error"]["message"]


def test_outside_the_main_thread_stages_run_without_a_limit():
    from fxflow.deadline import run_limit, stage_deadline

    done = []

    def body():
        with run_limit(0.05), stage_deadline("trace", "tracer"):
            time.sleep(0.2)
            done.append(True)

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(5)
    assert done == [True]


def test_a_nested_stage_keeps_the_outer_limit_and_a_fast_stage_is_untouched():
    from fxflow.deadline import StageTimeout, run_limit, stage_deadline

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("stages are stopped only in the main thread")
    with run_limit(0.3):
        with stage_deadline("checks", "expect"):
            with stage_deadline("inner", "equivalence"):
                pass  # fast: nothing happens
        with pytest.raises(StageTimeout, match="checks \\(expect\\)"):
            with stage_deadline("checks", "expect"):
                with stage_deadline("inner", "equivalence"):
                    time.sleep(5)
    import signal

    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# ----------------------------------------------------------------------------- who is blamed


def test_a_forward_that_raises_is_blamed_on_the_module_not_the_inputs(hostile_model, tmp_path):
    run = run_in_process(ONE_INPUT, [f"model.module._target_={HOSTILE}.RaisesInForward", "tracer=symbolic"],
                         tmp_path / "run")
    message = run.summary["error"]["message"]
    assert run.summary["status"] == "error" and "model.module" in message and "model.inputs" not in message
    assert "model bug [/] in forward" in message


def test_inputs_that_do_not_fit_the_model_are_still_blamed_on_the_inputs(hostile_model, tmp_path):
    run = run_in_process(ONE_INPUT, [f"model.module._target_={HOSTILE}.TakesFourFeatures", "tracer=symbolic",
                                     "model.inputs.x.shape=[3,5]"], tmp_path / "run")
    message = run.summary["error"]["message"]
    assert run.summary["status"] == "error" and "model.inputs" in message and "shapes cannot be multiplied" in message
