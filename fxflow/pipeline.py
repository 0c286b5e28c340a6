"""One run, in one direction: validate → build → trace → transforms → checks → record.

`run_job` never raises for a bad config or a failing step: whatever happens ends in a
complete summary.json whose status says passed, failed or error. It writes summary.json
first with status `running` (naming the process), so a run that dies without finishing is
recognisably incomplete. An interrupt (Ctrl-C, SIGTERM) is recorded as `interrupted` and
then re-raised, so the command can stop and exit 130/143. The run's log, fxflow.log, has
every step's start and end and the full traceback of any failure.

What a failing step says comes from the step (`fxflow.steps`); what the run borrows from the
process (log file, stderr, threads) from `fxflow.capture`; how checks settle from
`fxflow.settlement`; summary.json from `fxflow.record.summary`.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from fxflow.capture import close_stages, collector_paused, run_log, stderr_to_log, torch_threads
from fxflow.config.errors import ConfigError, ConfigProblem, first_line
from fxflow.config.targets import trust_from_environment
from fxflow.config.validate import resolve
from fxflow.inputs import InputSet, make_inputs
from fxflow.deadline import StageTimeout, run_limit, stage_deadline
from fxflow.interrupts import as_interrupt
from fxflow.plan import RunPlan, plan_run
from fxflow.record.stage_files import record_stage
from fxflow.record.summary import RecordError, finish, present_outcome, write_summary
from fxflow.record.writer import RunRecord
from fxflow.requirements import RequirementMissing
from fxflow.run_state import RunState
from fxflow.settlement import TRACE_RNG_OFFSET, Equivalence, Failure, judge_by, settle_checks
from fxflow.stages import kind_of
from fxflow.steps import BUILD, INPUTS, RECORD, StepError, blame_inputs, error_entry, key_of
from fxflow.transforms.base import StageContext

__all__ = ["run_job", "RecordError", "StepError", "key_of", "TRACE_RNG_OFFSET", "LOG_FILE"]
log = logging.getLogger("fxflow")
LOG_FILE = "fxflow.log"


def run_job(cfg: DictConfig | dict[str, Any], run_dir: Path, overrides: list[str], files: list[str] = (),
            present: Callable[[RunState, Path], None] | None = None, hydra_overrides: list[str] = (),
            ends_process: bool = False) -> RunState:
    """Run one composed config and write its record; `present` shows the outcome (the terminal summary).
    `hydra_overrides` (hydra.run.dir=..., hydra/launcher=...) are recorded beside the job's overrides.
    `ends_process`: the process exits after this run, so its garbage is left to the exit
    (`capture.collector_paused`).

    Raises only Interrupted (after recording it) and RecordError (when no summary can be written).
    """
    try:
        record = RunRecord(run_dir)
    except OSError as exc:
        raise RecordError(f"cannot create the run directory {run_dir} (hydra.run.dir): {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    recipe = (OmegaConf.select(cfg, "recipe", default="?", throw_on_resolution_failure=False)
              if isinstance(cfg, DictConfig) else cfg.get("recipe", "?"))
    state = RunState(recipe=str(recipe), overrides=list(overrides), hydra_overrides=list(hydra_overrides),
                     trusted=trust_from_environment().record())
    with run_log(record.path(LOG_FILE)):
        log.info("run of recipe %s started in %s (process %s)", state.recipe, run_dir, state.pid)
        write_summary(record, state, run_dir)  # status `running`
        start = time.perf_counter()
        try:
            with state.timed("validate"):
                container = resolve(cfg)
                plan = plan_run(container, files)
            judge_by(plan, state)
            state.step = RECORD.name
            record.write_text("config.yaml", OmegaConf.to_yaml(container))
            with stderr_to_log(), torch_threads(plan.spec.threads), collector_paused(not ends_process), \
                    run_limit(plan.spec.timeout_s):
                _run_stages(plan, record, state)
        except RequirementMissing as exc:
            state.skipped = str(exc) if state.step == "validate" else f"{state.step}: {exc}"
            log.warning("skipped: %s", state.skipped)
        except BaseException as exc:  # noqa: BLE001 - any failure still ends in a complete record
            interrupt = as_interrupt(exc)
            if interrupt is None and not isinstance(exc, Exception):
                raise  # SystemExit and the like belong to the process
            if interrupt is not None:
                state.interrupt(interrupt.name)
                log.warning("interrupted by %s during step %s", interrupt.name, state.step)
                finish(record, state, run_dir, start)
                raise interrupt from None
            if isinstance(exc, ConfigError):
                exc.recipe, exc.files = exc.recipe or state.recipe, exc.files or list(files)
            state.error = error_entry(exc, state.step)
        finish(record, state, run_dir, start)
        if present is not None:
            present_outcome(present, record, state, run_dir)
    return state


def _run_stages(plan: RunPlan, record: RunRecord, state: RunState) -> None:
    """Build, trace, each transform, then settle the checks; modules are closed however it ends."""
    model, inputs = _build(plan, state)
    modules: dict[str, Any] = {}
    try:
        modules["trace"] = gm = _trace(plan, model, inputs, state)
        record_stage(record, state, 0, "trace", None, gm, plan.spec.report)
        judge = Equivalence(plan, model)
        if "trace" in judge.stages:
            state.checks.append(judge("trace", gm))
        failure = _apply_transforms(plan, modules, inputs, record, state, judge)
        with state.timed("checks"), stage_deadline("checks", "expect"):
            settle_checks(plan, modules, failure, judge, state)
    except StepError as exc:
        if exc.step == RECORD.name:
            raise
        raise blame_inputs(exc, model, inputs, plan.spec.model) from exc.cause
    finally:
        close_stages(modules)


def _build(plan: RunPlan, state: RunState) -> tuple[Any, InputSet]:
    spec = plan.spec
    with state.timed("build"):
        with BUILD.guard():
            torch.manual_seed(spec.seed)
            model = plan.model_factory(**{k: v for k, v in spec.model.module.items() if k != "_target_"})
            if isinstance(model, torch.nn.Module):
                model.train(spec.model.train)
        with INPUTS.guard():
            inputs = make_inputs(spec.model.inputs, spec.seed, plan.policy)
    state.facts["build"] = _model_facts(model)
    return model, inputs


def _trace(plan: RunPlan, model: Any, inputs: InputSet, state: RunState) -> torch.fx.GraphModule:
    unused = plan.tracer.unused_settings(model)
    if unused:
        raise ConfigError([ConfigProblem(f"tracer.{field}", message, None, accepted) for field, message, accepted in unused])
    with state.timed("trace"), plan.tracer.step().guard():
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(plan.spec.seed + TRACE_RNG_OFFSET)
            gm = plan.tracer.trace(model, dict(inputs))
    for warning in caught:  # tracer chatter (the meta tracer warns per node) goes to the log, not the terminal
        log.warning("trace: %s", warning.message)
    state.stages.append("trace")
    state.facts["trace"] = {"tracer": type(plan.tracer).__name__, "graph_node_count": len(gm.graph.nodes),
                            "warnings": len(caught), **plan.tracer.facts()}
    return gm


def _apply_transforms(plan: RunPlan, modules: dict[str, Any], inputs: InputSet, record: RunRecord, state: RunState,
                      judge: Equivalence) -> Failure | None:
    """Apply each transform in order to the trace, recording and checking each stage; stop at the
    first that raises (returned, to be judged against `expect.error`). Each completed stage's
    module goes into `modules` by name."""
    devices = [d.model_copy(update={"name": d.name or key}) for key, d in plan.spec.devices.items()]
    gm = modules["trace"]
    for index, (name, transform) in enumerate(plan.transforms.items(), start=1):
        ctx = StageContext(name, inputs, devices, record.path(name))
        try:
            with state.timed(f"transform.{name}", step=name), stage_deadline(f"transform {name}", f"transforms.{name}"):
                out = transform.run(gm, ctx)
        except (RequirementMissing, StageTimeout):
            raise
        except Exception as exc:  # noqa: BLE001 - judged against expect.error in settle_checks
            state.facts[name] = ctx.facts
            log.info("stage %s raised %s: %s", name, type(exc).__name__, exc)
            return Failure(name, exc)
        state.facts[name] = ctx.facts
        modules[name] = out
        with transform.step(name).guard():
            typed = transform.ensures(kind_of(gm), out, ctx.facts)
        state.stages.append(name)
        if transform.probe:
            state.notes.append(f"{name} is a probe: it inspects without changing the module, so equivalence "
                               "does not apply to it")
        record_stage(record, state, index, name, gm, out, plan.spec.report, typed)
        gm = out
        if name in judge.stages:
            with state.timed(f"check.{name}", step=name):
                state.checks.append(judge(name, out))
    return None


def _model_facts(model: Any) -> dict[str, Any]:
    if not isinstance(model, torch.nn.Module):
        return {"kind": "function", "name": getattr(model, "__name__", str(model))}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"kind": "module", "class": type(model).__name__, "parameter_bytes": params, "buffer_bytes": buffers,
            "training": model.training}
