"""The review verbs in-process: ls, show, validate, cp, diff (fxflow.verbs)."""

from __future__ import annotations

import pytest

import io

from rich.console import Console

from fxflow.verbs import run_verb, version_text


def verb(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_verb(list(argv), Console(file=out, width=200, color_system=None))
    return code, out.getvalue()


def test_version_is_fxflows():
    import fxflow

    code, out = verb("--version")
    assert code == 0 and out.startswith(f"fxflow {fxflow.__version__}") and out.strip() == version_text()


def test_ls_lists_recipes_with_devices_and_options_with_purpose():
    code, out = verb("ls")
    assert code == 0
    assert "sparse_nn" in out and "test_sparse_nn_partition; devices=three_gpu" in out
    assert "devices=two_of_200b" in out  # partition_latency's own device list
    assert "parallel_towers" in out and "partitions that can run side by side" in out
    assert "latency@transforms.partition.latency_model=OPTION" in out


def test_show_names_the_file_or_override_of_each_value():
    code, out = verb("show", "partition_latency", "devices=two_gpu", "transforms.partition.mode=cost_aware")
    lines = out.splitlines()
    assert code == 0 and lines[-1].startswith("# valid")
    assert "devices:  # conf/devices/two_gpu.yaml (chosen by devices=two_gpu)" in lines
    assert any(line.strip() == "mode: cost_aware  # command line (transforms.partition.mode=cost_aware)" for line in lines)
    assert any(line.strip() == "transfer_rate_bytes_per_sec: 2  # recipes/partition_latency.yaml" for line in lines)
    assert any(line.strip() == "saturate_host: false  # conf/transform/partition.yaml" for line in lines)
    assert any(line.strip().startswith("latency_model:  # conf/latency/size_x2.yaml") for line in lines)


def test_show_of_a_bad_override_lists_the_problem_and_exits_1():
    code, out = verb("show", "partition_latency", "transforms.partition.mode=fast")
    assert code == 1 and "transforms.partition.mode" in out and "command line" in out


def test_cp_then_validate_a_broken_copy_names_every_broken_key_and_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = verb("cp", "partition_latency", "--name", "my_latency")
    assert code == 0
    recipe = tmp_path / "fxflow_conf/recipes/my_latency.yaml"
    devices = tmp_path / "fxflow_conf/devices/two_of_200b.yaml"
    latency = tmp_path / "fxflow_conf/latency/size_x2.yaml"
    assert recipe.is_file() and devices.is_file() and latency.is_file()
    assert "recipe: my_latency" in recipe.read_text()
    assert verb("validate", "my_latency")[0] == 0  # the copy is found without a flag and is valid
    recipe.write_text(recipe.read_text().replace("transfer_rate_bytes_per_sec: 2", "transfer_rate_bytes_per_sec: fast"))
    devices.write_text(devices.read_text().replace("dev_1: {mem_bytes: 200", "dev_1: {mem_bytes: -5"))
    latency.write_text(latency.read_text().replace("unweighted_per_byte:", "unweighted_per_bite:"))
    code, out = verb("validate", "my_latency")
    assert code == 1 and "3 problem(s)" in out
    for key, where in [("transforms.partition.transfer_rate_bytes_per_sec", "fxflow_conf/recipes/my_latency.yaml"),
                       ("devices.dev_1.mem_bytes", "fxflow_conf/devices/two_of_200b.yaml"),
                       ("transforms.partition.latency_model.unweighted_per_bite", "fxflow_conf/latency/size_x2.yaml")]:
        line = out.index(key)
        assert where in out[line:out.index("\n  -", line) if "\n  -" in out[line:] else len(out)], (key, out)
    assert verb("validate", "sparse_nn")[0] == 0  # a recipe that uses none of the broken copies is unaffected


def test_diff_shows_config_figures_with_change_and_checks(run_recipe, tmp_path):
    a = run_recipe("partition_latency", "report.pictures=false")
    b = run_recipe("partition_latency", "transforms.partition.mode=cost_aware", "report.pictures=false")
    code, out = verb("diff", str(a.run_dir), str(b.run_dir))
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("partition.critical_path_latency "))
    assert "208.0" in line and "200.0" in line and "-3.8%" in line
    assert any(x.startswith("transforms.partition.mode") and "cost_aware" in x for x in out.splitlines())
    assert any(x.startswith("expect.partition.critical_path_latency") and "fail (shown only)" in x
               for x in out.splitlines())
    assert verb("diff", str(a.run_dir), str(tmp_path / "nothing"))[0] == 2


def test_verbs_run_before_hydra_sees_the_line(capsys):
    """The entry point dispatches a verb before Hydra parses the line (Hydra would say 'missing EQUAL')."""
    from fxflow.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ls", "devices"])
    captured = capsys.readouterr()
    assert exit_info.value.code in (0, None), captured.out + captured.err
    assert "three_of_1500b" in captured.out and "missing EQUAL" not in captured.err


def test_version_through_the_entry_point(capsys):
    import fxflow
    from fxflow.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code in (0, None) and capsys.readouterr().out.startswith(f"fxflow {fxflow.__version__} ")


def test_validate_calls_a_recipe_the_machine_cannot_run_valid_and_says_it_would_be_skipped():
    code, out = verb("validate", "partition_latency", "requires.packages=[surely_not_installed_pkg]")
    assert code == 0 and "1 of 1 recipe(s) valid" in out
    assert "would skip the run: package 'surely_not_installed_pkg' is not installed" in " ".join(out.split())


def test_show_prints_the_bytes_each_memory_size_means():
    code, out = verb("show", "partition_latency", "devices=four_of_84kb", "devices.dev_1.mem_bytes=20 KiB",
                     "devices.dev_2.mem_bytes=20 KB")
    assert code == 0
    assert "# devices.dev_0.mem_bytes = 84,000 B (written 84kB)" in out
    assert "# devices.dev_1.mem_bytes = 20,480 B (written 20 KiB)" in out
    assert "# devices.dev_2.mem_bytes = 20,000 B (written 20 KB)" in out
    code, out = verb("show", "partition_latency", "devices.dev_1.mem_bytes=4 mb")
    assert code == 1 and "lowercase b means bits" in out and "[command line (devices.dev_1.mem_bytes=4 mb)]" in out


def test_runs_lists_the_latest_records_newest_first_with_status(tmp_path):
    import json
    import os

    def record(folder, summary, when):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ("sweep_summary.json" if "counts" in summary else "summary.json")
        path.write_text(json.dumps(summary))
        os.utime(path, (when, when))

    outputs = tmp_path / "outputs"
    record(outputs / "2026-01-01" / "10-00-00-sparse_nn-1", {"recipe": "sparse_nn", "status": "passed"}, 1000)
    record(outputs / "2026-01-01" / "11-00-00-split-2", {"recipe": "split", "status": "failed"}, 3000)
    sweep = outputs / "multirun" / "2026-01-01" / "10-30-00-3"
    record(sweep / "0", {"recipe": "partition_latency", "status": "passed"}, 1900)
    record(sweep, {"counts": {"passed": 1, "not_run": 1}}, 2000)
    code, out = verb("runs", "--outputs", str(outputs), "-n", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 5  # a heading, then two lines per record
    assert "failed  split" in lines[1] and lines[2].strip().endswith("11-00-00-split-2")
    assert "not_run (1 passed, 1 not_run)  sweep: partition_latency" in lines[3]
    assert verb("runs", "--outputs", str(tmp_path / "none"))[1].startswith("no run records")
