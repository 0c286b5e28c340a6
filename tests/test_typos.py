"""The commonest typos get one line naming what was written and the few closest names: a verb, a
recipe, a group option (in a sweep too), a key, a choice among fixed values."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from fxflow.config.errors import did_you_mean
from fxflow.verbs import run_verb


def entry_point(capsys, *argv: str) -> tuple[int, str]:
    from fxflow.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def validate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_verb(["validate", *argv], Console(file=out, width=200, color_system=None))
    return code, out.getvalue()


def test_did_you_mean_names_the_closest_few():
    assert did_you_mean("tow_gpu", ["two_gpu", "one_gpu", "three_gpu", "none", "five_of_40b"]) \
        == " (did you mean 'two_gpu', 'one_gpu' or 'three_gpu'?)"
    assert did_you_mean("mod", ["mode", "picture"]) == " (did you mean 'mode'?)"


def test_a_mistyped_verb_is_named_as_one(capsys):
    code, out = entry_point(capsys, "valdate", "--all")
    assert code == 1 and "'valdate' is neither a verb nor KEY=VALUE (did you mean 'validate'?)" in out
    assert "missing EQUAL" not in out


def test_a_mistyped_recipe_or_option_gets_the_closest_names_not_the_listing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = entry_point(capsys, "-m", "recipe=partition_latency", "devices=two_gpu,tow_gpu")
    assert code == 1 and "devices has no option 'tow_gpu' (did you mean 'two_gpu'" in out
    assert "four_of_1200b" not in out
    assert not (tmp_path / "outputs").exists()  # a sweep refused before any job started: no folder
    code, out = entry_point(capsys, "recipe=sparse_nnn", "seed=3")
    assert code == 1 and "no recipe 'sparse_nnn' (did you mean 'sparse_nn'" in out
    assert "partition_latency" not in out and "search path" not in out.lower()  # not Hydra's whole listing
    [summary] = (tmp_path / "outputs").glob("*/*-sparse_nnn-*/summary.json")  # the run's folder, as named
    record = json.loads(summary.read_text())
    assert (record["status"], record["recipe"], record["overrides"]) == ("error", "sparse_nnn", ["recipe=sparse_nnn", "seed=3"])
    assert record["error"]["stage"] == "compose" and "did you mean 'sparse_nn'" in record["error"]["message"]
    code, out = entry_point(capsys, "devices=tow_gpu")
    assert code == 1 and "the record at outputs/" in out and "-sparse_nn-" in out  # the default recipe's folder


def test_validate_blames_an_override_for_an_unknown_key_and_names_the_close_one():
    code, out = validate("partition_latency", "transforms.partition.mdoe=cost_aware")
    assert code == 1
    assert "transforms.partition.mdoe: no such key under transforms.partition (did you mean 'mode'?)" in out
    assert "in command line (transforms.partition.mdoe=cost_aware)" in out and "recipes/partition_latency" not in out


def test_validate_blames_an_override_for_an_unknown_option_and_a_value_outside_the_choices():
    code, out = validate("partition_latency", "devices=tow_gpu")
    assert code == 1 and "did you mean 'two_gpu'" in out and "in command line" in out
    code, out = validate("partition_latency", "transforms.partition.mode=size_base")
    assert code == 1 and "(did you mean 'size_based'?)" in out
    assert "in command line (transforms.partition.mode=size_base)" in out


@pytest.mark.parametrize("argv,wanted", [
    (["recipe=sparse_nn", "transforms.partition.algoritm=dp"],
     "transforms.partition.algoritm: no such key under transforms.partition (did you mean 'algorithm'?)"),
    (["-m", "recipe=sparse_nn", "devices=two_gpu,three_gpu", "transforms.partition.algoritm=dp"],
     "(did you mean 'algorithm'?)"),
    (["recipe=sparse_nn", "transforms.partiton.algorithm=dp"],
     "no such key as 'partiton' under transforms (did you mean 'partition'?)"),
])
def test_a_run_with_a_mistyped_key_names_the_close_one_and_starts_nothing(capsys, tmp_path, monkeypatch, argv, wanted):
    monkeypatch.chdir(tmp_path)
    code, out = entry_point(capsys, *argv)
    assert code == 1 and wanted in out and len(out.strip().splitlines()) == 1, out
    assert "command line (transforms." in out and "Traceback" not in out
    assert not (tmp_path / "outputs").exists()


def test_validate_takes_a_runs_recipe_syntax_as_the_recipes_to_check():
    code, out = validate("recipe=sparse_nn,partition_latency", "devices=two_gpu")
    assert code == 0 and out.splitlines()[-1] == "2 of 2 recipe(s) valid"
    assert "valid    sparse_nn" in out and "valid    partition_latency" in out
