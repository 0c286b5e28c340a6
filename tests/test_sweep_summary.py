"""The sweep summary is read from the jobs' records on disk (fxflow.record.sweep)."""

from __future__ import annotations

import io
import json
import time

from rich.console import Console

from fxflow.record.sweep import collect, earlier_pass, print_table, write_summary

JOBS = [["recipe=partition_latency", f"devices={d}", f"transforms.partition.mode={m}"]
        for d in ("three_of_1500b", "four_of_1200b") for m in ("size_based", "cost_aware")]


def write_job(sweep, number, overrides, status="passed", partitions=3):
    folder = sweep / str(number)
    folder.mkdir(parents=True)
    metrics = {"partition.num_partitions": partitions, "partition.critical_path_latency": 100.0 * partitions,
               "partition.mode": overrides[-1]}
    (folder / "summary.json").write_text(json.dumps({
        "status": status, "overrides": overrides, "metrics": metrics,
        "key_metrics": ["partition.num_partitions", "partition.critical_path_latency"]}))


def test_rows_follow_the_jobs_and_their_records(tmp_path):
    for number, job in enumerate(JOBS[:3]):
        write_job(tmp_path, number, job, status="failed" if number == 1 else "passed", partitions=number + 3)
    rows = collect(tmp_path, JOBS, started=time.time() - 60)
    assert [r["status"] for r in rows] == ["passed", "failed", "passed", "missing"]  # job 3 left no record
    assert rows[2]["metrics"] == {"partition.num_partitions": 5, "partition.critical_path_latency": 500.0}
    assert not any(r["earlier"] for r in rows)
    assert [r["status"] for r in collect(tmp_path, None)] == ["passed", "failed", "passed"]  # job list unknown


def test_records_from_before_the_multirun_are_marked_earlier(tmp_path):
    write_job(tmp_path, 0, JOBS[0])
    assert collect(tmp_path, JOBS[:1], started=time.time() + 5)[0]["earlier"]
    (tmp_path / "0" / "config.yaml").write_text("seed: 0\n")
    assert earlier_pass(tmp_path / "0", JOBS[0], "seed: 0\n")["status"] == "passed"
    assert earlier_pass(tmp_path / "0", JOBS[1], "seed: 0\n") is None  # other overrides: run it
    assert earlier_pass(tmp_path / "0", JOBS[0], "seed: 1\n") is None  # another config: run it


def test_summary_files_and_a_table_within_100_columns(tmp_path):
    for number, job in enumerate(JOBS):
        write_job(tmp_path, number, job, partitions=number + 3)
    rows = collect(tmp_path, JOBS)
    paths = write_summary(tmp_path, rows)
    saved = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert saved["passed"] and saved["common_overrides"] == ["recipe=partition_latency"]
    assert [job["metrics"]["partition.num_partitions"] for job in saved["jobs"]] == [3, 4, 5, 6]
    csv_lines = (tmp_path / "sweep_summary.csv").read_text().splitlines()
    assert csv_lines[0].endswith("partition.num_partitions,partition.critical_path_latency") and len(csv_lines) == 5
    assert "| overrides" in (tmp_path / "sweep_summary.md").read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    out = io.StringIO()
    print_table(rows, paths, Console(file=out, width=100))
    table = [line for line in out.getvalue().splitlines() if not line.startswith("sweep summary:")]
    assert all(len(line) <= 100 for line in table)
    assert "cost_aware" in out.getvalue() and "600" in out.getvalue()
