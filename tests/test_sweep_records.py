"""A sweep job's record says what the README says it does."""

from __future__ import annotations

import json
import logging

from conftest import REPO
from omegaconf import OmegaConf

from fxflow.record.run_dir import fresh_job_dir
from fxflow.record.writer import RunRecord

JOB_LOG = "fxflow.log"  # hydra.job_logging in conf/config.yaml: ${hydra.job.name}.log
from fxflow.record.sweep import skipped_summary


def test_a_job_run_again_keeps_its_log_and_hydra_folder(tmp_path):
    """sweep.rerun_passed=true (or a failed job re-run): Hydra has opened this job's log before the job
    clears the earlier record; the log must survive, holding this run's lines only."""
    record = RunRecord(tmp_path)  # the earlier job's record, as fxflow writes it (claimed in its manifest)
    record.write_json("summary.json", {"status": "passed", "files": {"partition": ["partition/x.md"]}})
    record.write_text("partition/x.md", "earlier")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("this job's")
    (tmp_path / JOB_LOG).write_text("earlier run's line\n")
    handler = logging.FileHandler(tmp_path / JOB_LOG)  # as Hydra's job_logging opens it, before the task
    logger = logging.getLogger("fxflow.test_rerun")
    logger.addHandler(handler)
    try:
        fresh_job_dir(tmp_path, OmegaConf.create({"output_subdir": ".hydra", "job": {"name": "fxflow"}}))
        logger.warning("this run's line")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (tmp_path / JOB_LOG).read_text() == "this run's line\n"
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == "this job's"
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "partition").exists()


def test_a_fail_fast_job_not_started_says_what_the_readme_says(tmp_path):
    status = skipped_summary(tmp_path, ["seed=1"], "sparse_nn", "an earlier job failed")["status"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == status == "not_run"
    fail_fast = next(line for line in (REPO / "README.md").read_text().split("- `sweep.fail_fast=true`")[1:2])
    assert f"`{status}`" in fail_fast.split("\n- ")[0]
