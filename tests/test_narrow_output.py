"""What a person reads at 80 columns: swept values, node names and diff keys whole; headline figures
first; a job that did not run is not drawn as a zero; piped output honours COLUMNS."""

from __future__ import annotations

import io
import math
import re

from rich.console import Console

from fxflow.record.sweep import bar_heights, collect, print_table, write_summary
from fxflow.reports.console import make_console
from fxflow.reports.partition import terminal_table
from fxflow.verbs import run_verb
from test_sweep_summary import JOBS, write_job


def rendered(renderable, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_sweep_table_at_80_columns_shows_every_swept_value_whole(tmp_path):
    jobs = [[*job, "transforms.partition.latency_model.node_cost_rule=size_times_two"] for job in JOBS]
    jobs[3][-1] = "transforms.partition.latency_model.node_cost_rule=unit"
    for number, job in enumerate(jobs):
        write_job(tmp_path, number, job, partitions=number + 3)
    rows = collect(tmp_path, jobs)
    out = io.StringIO()
    print_table(rows, write_summary(tmp_path, rows), Console(file=out, width=80, color_system=None))
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("sweep summary:")]
    assert all(len(line) <= 80 for line in lines) and "…" not in out.getvalue()
    header = next(line for line in lines if "status" in line)
    assert "devices" in header and "mode" in header and "node_cost_rule" in header
    for number, job in enumerate(jobs):
        row = next(line for line in lines if re.match(rf"\s*{number} ", line))
        for override in job[1:]:
            assert override.split("=", 1)[1] in row, (override, row)  # the value whole, on the job's line


def test_a_job_without_the_figure_gets_no_bar_rather_than_zero(tmp_path):
    for number, job in enumerate(JOBS[:3]):
        write_job(tmp_path, number, job, partitions=number + 3)
    folder = tmp_path / "3"
    folder.mkdir()
    (folder / "summary.json").write_text('{"status": "not_run", "overrides": %s, "metrics": {}}'
                                         % str(JOBS[3]).replace("'", '"'))
    rows = collect(tmp_path, JOBS)
    heights = bar_heights(rows, "partition.num_partitions")
    assert heights[:3] == [3.0, 4.0, 5.0] and math.isnan(heights[3]) and rows[3]["status"] == "not_run"
    assert write_summary(tmp_path, rows)["png"].is_file()


def test_partition_table_keeps_node_names_whole_beside_latencies_in_seconds():
    names = ["embedding_bag_1", "linear_layer_0", "relu_activation", "cat_1", "linear_2"]
    facts = {"devices": {"dev_0": {"mem_bytes": 33_000_000}, "gpu_with_long_name": {"mem_bytes": 33_000_000}},
             "partitions": [{"id": i, "devices": [device], "used_mem_bytes": 1_234_567,
                             "latency": [1.234567e-05, 3.2e-06, 1.5555e-05], "compute_nodes": names}
                            for i, device in enumerate(["dev_0", "gpu_with_long_name"])]}
    text = rendered(terminal_table("partition", facts))
    words = set(re.findall(r"[A-Za-z0-9_.+-]+", text))
    assert all(len(line) <= 80 for line in text.splitlines()) and "…" not in text
    assert set(names) <= words and "gpu_with_long_name" in words  # never cut to a few characters
    assert "1.23e-05" in words and "1.56e-05" in words  # three significant digits


def test_diff_puts_changed_headline_figures_first_and_keeps_keys_whole(run_recipe):
    a = run_recipe("partition_latency", "report.pictures=false")
    b = run_recipe("partition_latency", "transforms.partition.mode=cost_aware", "devices=three_gpu",
                   "report.pictures=false")
    out = io.StringIO()
    assert run_verb(["diff", str(a.run_dir), str(b.run_dir)], Console(file=out, width=80, color_system=None)) == 0
    text = out.getvalue()
    # the record folders (A:, B:) are lines of their own, never wrapped: they are to copy
    assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith(("A: ", "B: ")))
    assert text.index("headline figures that differ") < text.index("config values that differ")
    assert "partition.critical_path_latency" in text  # a headline figure, its key whole on one line
    assert "--all lists them" in text
    keys = [line.split()[0] for line in text.splitlines() if line[:1].isalpha() and " " in line]
    assert "transforms.partition.mode" in keys
    full = io.StringIO()
    run_verb(["diff", str(a.run_dir), str(b.run_dir), "--all"], Console(file=full, width=80, color_system=None))
    assert len(full.getvalue().splitlines()) > len(text.splitlines()) and "--all lists them" not in full.getvalue()


def test_piped_output_honours_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    assert make_console(stream=io.StringIO()).width == 72
    monkeypatch.delenv("COLUMNS")
    assert make_console(stream=io.StringIO()).width == 100


def test_help_fits_80_columns_and_gives_the_shell_completion_line(capsys, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    from fxflow.cli import main

    monkeypatch.setattr("sys.argv", ["/somewhere/fxflow/__main__.py"])
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "sparse_nn" in out and "| runs |" in out
    assert [line for line in out.splitlines() if len(line.rstrip()) > 80] == []
    assert 'eval "$(fxflow -sc install=bash)"' in out
