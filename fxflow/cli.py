"""The `fxflow` command: a Hydra application over the shipped configs and recipes, plus review verbs.

Examples:
    python -m fxflow                                      # default recipe (sparse_nn on three_gpu)
    python -m fxflow recipe=sparse_nn devices=two_gpu
    python -m fxflow recipe=partition_latency transforms.partition.mode=cost_aware
    python -m fxflow -m recipe=partition_latency devices=two_gpu,three_gpu
    python -m fxflow recipe=sparse_nn --cfg job           # print the composed config
    python -m fxflow --help                               # recipes, groups and their options
    fxflow ls | show NAME | validate --all | cp NAME DEST | diff RUN_A RUN_B | --version

A first word that names a verb (fxflow.verbs) runs the verb; anything else goes to Hydra, once
what it would build from `hydra:` settings has passed fxflow's checks (fxflow.config.hydra_settings).
`--config-dir DIR` (anywhere on the line) adds a folder of your configs ahead of the shipped ones.
The working folder is not searched for modules ahead of installed libraries; the packages you
trust (fxflow.config.trust) are found there after them, and each command says where trust came from.

Exit code: 0 when every job passed (or was skipped for a missing requirement), 1 otherwise;
130 after Ctrl-C and 143 after SIGTERM (the record says `interrupted`); 2 when an explicit run
directory already holds a record (FXFLOW_OVERWRITE=1 replaces an fxflow record that holds
nothing else) or other files, or a sweep directory holds a different sweep.
"""

from __future__ import annotations

from functools import partial

import contextlib
import io
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fxflow.config.trust import working_folder_off_path
from fxflow import progress
from fxflow.cli_errors import hydra_errors_in_one_line
from fxflow.interrupts import Interrupted, signals_interrupt
from fxflow.paths import conf_dir, set_config_dirs
from fxflow.record.run_dir import fresh_job_dir, register_resolvers

_STATUSES: list[str] = []
_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
_RUN_DIRS: list[Path] = []
# The process is the command's own (`main()` without argv): it exits once its job is done.
_ENDS_PROCESS = False


def _unknown_key(argv: list[str], exc: Exception) -> str | None:
    """Hydra's "Could not override 'KEY'" names no alternative: the closest keys, as `validate` gives them."""
    from fxflow.verbs.validate import override_problem

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:  # a swept value composes as its first choice: the keys are the same for each
        overrides = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override()
                     else o.input_line for o in OverridesParser.create().parse_overrides(
                         [item for item in argv if "=" in item and not item.startswith("-")])]
        found = override_problem(exc, None, overrides)
    except Exception:  # noqa: BLE001 - the hint is a courtesy; Hydra's own line still explains
        return None
    return f"{found[0]} (from {found[1]})" if found else None


def _task(cfg: DictConfig) -> dict:
    from fxflow.compose import config_files
    from fxflow.pipeline import RecordError, run_job
    from fxflow.reports.console import print_outcome

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    _RUN_DIRS.append(run_dir)
    # Overrides as typed: `seed=${nope}` must be recorded, not resolved.
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    hydra_overrides = OmegaConf.to_container(hydra_cfg.overrides.hydra, resolve=False)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    if sweeping and (done := _sweep_job_done(cfg, run_dir, overrides)) is not None:
        _STATUSES.append(done["status"])
        return done
    if sweeping:
        fresh_job_dir(run_dir, hydra_cfg)  # a re-run sweep: this job's earlier record goes, it runs afresh
    try:
        with signals_interrupt(), progress.enabled(_progress_console(hydra_cfg)):
            # signals also in a launcher's worker process: a signal ends the job `interrupted`
            state = run_job(cfg, run_dir, overrides,
                            config_files(hydra_cfg.runtime.choices, hydra_cfg.runtime.config_sources),
                            present=print_outcome, hydra_overrides=hydra_overrides,
                            ends_process=_ENDS_PROCESS and not sweeping)
    except RecordError as exc:  # nothing could be recorded: say so, and let a sweep go on
        print(f"fxflow: error: {exc}", file=sys.stderr)
        _STATUSES.append("error")
        return {"status": "error", "run_dir": str(run_dir), "metrics": {}, "checks": [],
                "error": {"stage": "record", "message": str(exc)}}
    _STATUSES.append(state.status)
    if sweeping and state.status != "passed" and OmegaConf.select(cfg, "sweep.fail_fast", default=False):
        from fxflow.record.sweep import stop

        stop(Path(hydra_cfg.sweep.dir), str(hydra_cfg.job.num))
    return state.summary(run_dir)


def _progress_console(hydra_cfg: DictConfig):  # noqa: ANN202 - rich Console or None
    """Where a run shows the progress of long steps: the terminal, unless jobs run side by side in
    other processes (each would draw over the others)."""
    from fxflow.reports.console import make_console

    parallel = hydra_cfg.mode == RunMode.MULTIRUN and not str(hydra_cfg.launcher._target_).endswith("BasicLauncher")
    return None if parallel or not sys.stdout.isatty() else make_console()


def _sweep_job_done(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict | None:
    """A sweep job that need not run: passed in an earlier run of the same sweep with the same resolved
    config, or after a failure in a fail_fast sweep. Returns its summary, or None to run it."""
    from fxflow.config.errors import ConfigError
    from fxflow.config.validate import resolve
    from fxflow.record.sweep import earlier_pass, skipped_summary, stopped

    hydra_cfg = HydraConfig.get()
    recipe = str(OmegaConf.select(cfg, "recipe", default="?", throw_on_resolution_failure=False))
    if not OmegaConf.select(cfg, "sweep.rerun_passed", default=False) and (run_dir / "summary.json").is_file():
        try:
            config_yaml = OmegaConf.to_yaml(resolve(cfg))  # as the run records it in config.yaml
        except ConfigError:
            config_yaml = None  # it does not resolve: run it, and the run says why
        if config_yaml is not None and (earlier := earlier_pass(run_dir, overrides, config_yaml)):
            print(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): passed in an earlier run of this sweep with "
                  "the same config; not run again (sweep.rerun_passed=true runs it)")
            return earlier
    if OmegaConf.select(cfg, "sweep.fail_fast", default=False) and stopped(Path(hydra_cfg.sweep.dir)):
        print(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): skipped, an earlier job failed (sweep.fail_fast)")
        return skipped_summary(run_dir, overrides, recipe, "an earlier job of this fail_fast sweep failed")
    return None


def _take_config_dirs(argv: list[str]) -> list[str]:
    """Remove `--config-dir DIR` / `--config-dir=DIR` / `-cd DIR` from the line and put DIR on the
    search path ahead of the shipped configs (Hydra's own handling would put it after them)."""
    rest, dirs = [], []
    items = iter(argv)
    for item in items:
        if item in _CONFIG_DIR_FLAGS:
            dirs.append(next(items, "."))
        elif item.startswith("--config-dir="):
            dirs.append(item.split("=", 1)[1])
        else:
            rest.append(item)
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        sys.exit(f"fxflow: config folder {missing[0]} not found (--config-dir)")
    set_config_dirs(dirs)
    return rest


def _refuse_unknown_names(argv: list[str]) -> None:
    """A misspelled verb or option stops here with the closest names (Hydra would say "missing
    EQUAL", or list every option of the group); exit 1. A run refused so leaves its `error` record."""
    from fxflow.choices import not_a_verb, unknown_choices
    from fxflow.verbs import VERBS

    if (hint := not_a_verb(argv, VERBS)) is not None:
        print(f"fxflow: {hint}", file=sys.stderr)
        sys.exit(1)
    overrides = [item for item in argv if not item.startswith("-") and ("=" in item or item.startswith("~"))]
    if messages := unknown_choices(overrides):
        print("\n".join(f"fxflow: {message}" for message in messages), file=sys.stderr)
        if not any(item.startswith("-") for item in argv):  # a run (not a sweep, --cfg or --help): its record says so
            from fxflow.record.refused import record_refused_run

            if (folder := record_refused_run(overrides, "; ".join(messages))) is not None:
                print(f"fxflow: the record at {folder} says so (status error)", file=sys.stderr)
        sys.exit(1)


def _exit_code() -> int:
    """A sweep's exit code comes from its jobs' records on disk (they may have run in other processes)."""
    from fxflow.record.sweep import SweepSummary

    if SweepSummary.outcome is not None:
        return 0 if SweepSummary.outcome[0] else 1
    return 0 if all(status in ("passed", "skipped") for status in _STATUSES) else 1  # one job, or none (--cfg, --help)


def _launch_refusal(argv: list[str]) -> str | None:
    """Why Hydra must not start with this command line, or None: a `hydra:` setting (from an
    override or any config file) that would build or import something outside fxflow's policy,
    or a Hydra flag that picks another primary config or re-runs a pickled one."""
    from hydra._internal.utils import get_args_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            args = get_args_parser().parse_args(argv)
        except SystemExit:
            return None  # Hydra reports its own usage error
    for flag, given in (("--config-path/-cp", args.config_path), ("--config-name/-cn", args.config_name),
                        ("--experimental-rerun", args.experimental_rerun)):
        if given is not None:
            return (f"{flag} is not accepted: fxflow's primary config is its own conf/config.yaml; put your configs "
                    "in ./fxflow_conf or name a folder with --config-dir DIR")
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return None  # nothing is built or logged
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fxflow.compose import hydra_settings_problems

    try:
        problems = hydra_settings_problems(args.overrides)
    except (HydraException, OmegaConfBaseException, RecursionError):
        return None  # composing fails the same way inside Hydra, which says why (in one line: cli_errors)
    if not problems:
        return None
    return (f"nothing was run: {len(problems)} problem(s) with Hydra's settings, which Hydra would act on "
            "before any check of the job:\n" + "\n".join(f"  - {p}" for p in problems))


def _announce_trust(names_only: bool = False) -> None:
    """Say once, on stderr, which packages this command trusts and where that trust came from."""
    from fxflow.config.targets import trust_from_environment

    text = trust_from_environment().announcement()
    if text:
        if names_only:
            text += " (show and validate check their names only and import nothing of theirs)"
        print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `fxflow` and `python -m fxflow` (no `argv`: the process's own, and the process
    ends after a single run, which then leaves its garbage to the exit)."""
    global _ENDS_PROCESS
    _ENDS_PROCESS = argv is None
    with working_folder_off_path():
        source_root = Path(__file__).resolve().parents[1]  # a checkout run without installing: its hydra_plugins
        if (source_root / "hydra_plugins").is_dir() and str(source_root) not in sys.path:
            sys.path.append(str(source_root))
        _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> None:
    from fxflow.record.sweep import SweepSummary

    _STATUSES.clear()
    SweepSummary.outcome = SweepSummary.running = None
    argv = _take_config_dirs(argv)
    from fxflow.verbs import is_verb, run_verb

    if is_verb(argv):
        if argv[0] in ("show", "validate"):
            _announce_trust(names_only=True)
        sys.exit(run_verb(argv))
    _refuse_unknown_names(argv)
    refusal = _launch_refusal(argv)
    if refusal is not None:
        print(f"fxflow: error: {refusal}", file=sys.stderr)
        sys.exit(1)
    _announce_trust()
    try:
        with signals_interrupt():
            register_resolvers()
            from fxflow.verbs.ls import overview_text

            OmegaConf.register_new_resolver("fxflow_overview", lambda: overview_text(80), replace=True)  # --help's listing
            sys.argv = ["fxflow", *argv]  # Hydra names the program after argv[0] (--help's shell-completion lines)
            with hydra_errors_in_one_line(partial(_unknown_key, argv)):  # one line, not a traceback
                hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")(_task)()
    except Interrupted as exc:
        _settle_sweep("interrupted", f"the sweep was interrupted by {exc.name}")
        where = f"; the record at {_RUN_DIRS[-1]} says so" if _RUN_DIRS else ""
        print(f"fxflow: interrupted by {exc.name}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BaseException:
        _settle_sweep("error", "the sweep ended before this job finished")
        raise
    sys.exit(_exit_code())


def _settle_sweep(status: str, cause: str) -> None:
    """A sweep that ended early: its jobs' records that still say `running` get their final status."""
    from fxflow.record.sweep import SweepSummary, settle_unfinished

    if SweepSummary.running is not None:
        settle_unfinished(SweepSummary.running, status, cause)
        SweepSummary.running = None
