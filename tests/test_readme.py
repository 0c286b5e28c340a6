"""The README's commands work as written: the everyday block (each command in-process; the sweep as
a process in test_cli_process.py) and the walk-through from one's own nn.Module to a checked run."""

from __future__ import annotations

import io
import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from rich.console import Console

from conftest import REPO, run_in_process
from fxflow.compose import compose_recipe
from fxflow.verbs import is_verb, run_verb

README = (REPO / "README.md").read_text()


def everyday_commands() -> list[list[str]]:
    """Each command of the README's everyday block, as argv after the program name."""
    block = README.split("## Everyday commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[:3] == ["python", "-m", "fxflow"] or words[0] == "fxflow", line
            commands.append(words[3:] if words[0] == "python" else words[1:])
    return commands


def sweep_command() -> list[str]:
    sweeps = [argv for argv in everyday_commands() if "-m" in argv]
    assert len(sweeps) == 1
    return sweeps[0]


RUNS = [argv for argv in everyday_commands() if not is_verb(argv) and not {"-m", "--cfg", "--help"} & set(argv)]


@pytest.mark.parametrize("argv", RUNS, ids=" ".join)
def test_everyday_run_passes(argv, tmp_path):
    run = run_in_process(None, argv, tmp_path / "run")
    assert run.summary["status"] == "passed", run.summary["checks"]


# `fxflow validate --all` composes every recipe (~5 s): .ci/run runs exactly that command on a fresh
# clone before the tests, so here it runs on three recipes, the same code path.
VERBS = [a if a != ["validate", "--all"] else ["validate", "sparse_nn", "split_qualname_mapping", "distributed_chain"]
         for a in everyday_commands() if is_verb(a)]


@pytest.mark.parametrize("argv", VERBS, ids=" ".join)
def test_everyday_verb_exits_0(argv):
    assert run_verb(argv, Console(file=io.StringIO(), width=100)) == 0


def test_everyday_cfg_job_composes():
    argv = next(a for a in everyday_commands() if "--cfg" in a)
    cfg, _ = compose_recipe(None, [a for a in argv if not a.startswith("--cfg") and a != "job"])
    assert cfg.recipe == "sparse_nn"


def test_everyday_help_lists_recipes_and_exits_0(capsys, monkeypatch):
    from fxflow.cli import main

    argv = next(a for a in everyday_commands() if "--help" in a)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert "partition_latency" in out and "test_sparse_nn_partition" in out
    assert "latency@transforms.partition.latency_model=OPTION" in out  # placed by recipes, said how


def walkthrough_files() -> dict[str, str]:
    """The files the README's walk-through writes: `path`: followed by a fenced block."""
    section = README.split("## Your own configs and model", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^`([^`\s]+\.(?:py|yaml|toml))`.*?:.*?```\w*\n(.*?)```", section, flags=re.S | re.M))


def test_walkthrough_from_own_module_to_checked_run(tmp_path, monkeypatch):
    files = walkthrough_files()
    assert set(files) >= {"my_models.py", "pyproject.toml", "fxflow_conf/model/tiny_mlp.yaml",
                          "fxflow_conf/recipes/tiny_split.yaml"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    out = io.StringIO()
    assert run_verb(["validate", "tiny_split"], Console(file=out, width=100)) == 0, out.getvalue()
    run = run_in_process("tiny_split", ["report.pictures=false"], tmp_path / "run")
    assert run.summary["status"] == "passed", run.summary["checks"]
    assert run.summary["model"] == "TinyMLP"
    assert run.metrics["partition.num_partitions"] == 2
    assert run.check("equivalence.partition")["passed"]


def test_walkthrough_errors_cite_the_users_files(tmp_path, monkeypatch):
    for name, text in walkthrough_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    model = tmp_path / "fxflow_conf/model/tiny_mlp.yaml"
    model.write_text(model.read_text().replace("x: {shape: [2, 16]}", "y: {shape: [2, 16]}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    run = run_in_process("tiny_split", ["report.pictures=false"], tmp_path / "run")
    message = run.summary["error"]["message"]
    assert run.summary["status"] == "error" and "model.inputs.y" in message
    assert "fxflow_conf/model/tiny_mlp.yaml" in message and "fxflow_conf/recipes/tiny_split.yaml" in message
    cited = message.split("(files: ", 1)[1].split(")", 1)[0].split(", ")
    assert cited and all(Path(f).is_file() for f in cited), cited  # every file named is one that was read


def readme_commands() -> list[list[str]]:
    """Every `python -m fxflow` / `fxflow` command in the README's bash blocks, as argv (continuation
    lines joined; a path the reader fills in, `outputs/DATE/...`, left out; the walk-through's, which
    need its files, are run by test_walkthrough_from_own_module_to_checked_run)."""
    own = README.split("## Your own configs and model", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.replace(own, ""), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "fxflow"] and "DATE" not in line:
                commands.append(words[3:])
            elif words[:1] == ["fxflow"]:
                commands.append(words[1:])
    return commands


def test_every_readme_command_names_real_configs_and_composes_valid():
    """Each command's recipe, options and keys exist and validate, every value of a sweep included
    (the runs themselves: the everyday block above, the sweep with each launcher in test_cli_process)."""
    from fxflow.choices import unknown_choices
    from fxflow.verbs.validate import check_recipe

    commands = readme_commands()
    assert len(commands) >= 20
    for argv in commands:
        if not argv or is_verb(argv):
            continue
        overrides = [a for a in argv if ("=" in a or a.startswith("~")) and not a.startswith("-")]
        assert unknown_choices(overrides) == [], argv
        recipe = next((o.split("=", 1)[1].split(",")[0] for o in overrides if o.startswith("recipe=")), "sparse_nn")
        first = [o.split("=", 1)[0] + "=" + o.split("=", 1)[1].split(",")[0] if "," in o and "[" not in o else o
                 for o in overrides if not o.startswith("recipe=")]
        verdict = check_recipe(recipe, first)
        assert verdict.valid, (argv, verdict.problems)
