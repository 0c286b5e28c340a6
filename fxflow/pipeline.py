"""One run, in one direction: validate → build → trace → transforms → checks → record.

`run_job` never raises for a bad config or a failing step: whatever happens ends in a
complete summary.json whose status says passed, failed or error. It writes summary.json
first with status `running` (naming the process), so a run that dies without finishing is
recognisably incomplete. An interrupt (Ctrl-C, SIGTERM) is recorded as `interrupted` and
then re-raised, so the command can stop and exit 130/143. The run's log, fxflow.log, has
every step's start and end and the full traceback of any failure.
"""

from __future__ import annotations

import io
import logging
import time
import traceback
import warnings
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from fxflow.blame import raised_by_model_code
from fxflow.checks.equivalence import CallFailed, Reference, check_equivalence
from fxflow.checks.expectations import check_error, check_metrics, check_raises, flatten_expectations
from fxflow.checks.result import Check
from fxflow.checks.scenario import scenario_changes
from fxflow.config.errors import ConfigError, Problem, first_line
from fxflow.config.schema import ReportSpec
from fxflow.config.validate import resolve
from fxflow.deadline import StageTimeout, run_limit, stage_deadline
from fxflow.facts import flatten
from fxflow.inputs import InputSet, input_sets, make_inputs
from fxflow.interrupts import as_interrupt
from fxflow.nodes import graph_facts
from fxflow.plan import Plan, plan_run
from fxflow.record.graphs import write_stage_graph
from fxflow.record.writer import RunRecord
from fxflow.reports.stage import reports_for
from fxflow.requirements import RequirementMissing
from fxflow.run_state import RunState
from fxflow.transforms.base import StageContext

log = logging.getLogger("fxflow")

TRACE_RNG_OFFSET = 1_000_003  # the trace-time RNG seed is the run's seed plus this
LOG_FILE = "fxflow.log"


class StepError(Exception):
    """An unexpected failure inside a named step, with a message meant for people."""

    def __init__(self, step: str, message: str, cause: BaseException):
        super().__init__(message)
        self.step = step
        self.cause = cause


class RecordError(Exception):
    """summary.json could not be written at all (disk full, folder gone): nothing records the run."""


def run_job(cfg: DictConfig | dict[str, Any], run_dir: Path, overrides: list[str], files: list[str] = (),
            present: Callable[[RunState, Path], None] | None = None) -> RunState:
    """Run one composed config and write its record; `present` shows the outcome (the terminal summary).

    Raises only Interrupted (after recording it) and RecordError (when no summary can be written).
    """
    try:
        record = RunRecord(run_dir)
    except OSError as exc:
        raise RecordError(f"cannot create the run directory {run_dir} (hydra.run.dir): {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    if isinstance(cfg, DictConfig):
        recipe = OmegaConf.select(cfg, "recipe", default="?", throw_on_resolution_failure=False)
    else:
        recipe = cfg.get("recipe", "?")
    state = RunState(recipe=str(recipe), overrides=list(overrides))
    with _run_log(record.path(LOG_FILE)):
        log.info("run of recipe %s started in %s (process %s)", state.recipe, run_dir, state.pid)
        _write_summary(record, state, run_dir)  # status `running`
        start = time.perf_counter()
        try:
            with state.timed("validate"):
                container = resolve(cfg)
                plan = plan_run(container, files)
            _judging(plan, state)
            state.step = "record"
            record.write_text("config.yaml", OmegaConf.to_yaml(container))
            with _stderr_to_log():
                _execute(plan, record, state)
        except ConfigError as exc:
            exc.recipe, exc.files = exc.recipe or state.recipe, exc.files or list(files)
            state.error = {"stage": "config", "type": "ConfigError", "message": exc.render(),
                           "problems": [p.render() for p in exc.problems]}
            log.error(exc.render())
        except RequirementMissing as exc:
            state.skipped = str(exc) if state.step == "validate" else f"{state.step}: {exc}"
            log.warning("skipped: %s", state.skipped)
        except StageTimeout as exc:
            state.error = {"stage": state.step, "type": "StageTimeout", "message": str(exc)}
            log.error("step %s stopped: %s", state.step, exc)
        except StepError as exc:
            state.error = {"stage": exc.step, "type": type(exc.cause).__name__, "message": str(exc)}
            log.error("step %s failed: %s\n%s", exc.step, exc, "".join(traceback.format_exception(exc.cause)))
        except BaseException as exc:  # noqa: BLE001 - any failure still ends in a complete record
            interrupt = as_interrupt(exc)
            if interrupt is None and not isinstance(exc, Exception):
                raise  # SystemExit and the like belong to the process
            if interrupt is not None:
                state.interrupt(interrupt.name)
                log.warning("interrupted by %s during step %s", interrupt.name, state.step)
            else:
                state.error = {"stage": state.step, "type": type(exc).__name__,
                               "message": f"{state.step} failed ({key_of(state.step)}): {type(exc).__name__}: "
                                          f"{first_line(exc)}"}
                log.error("step %s failed\n%s", state.step, traceback.format_exc())
            if interrupt is not None:
                _finish(record, state, run_dir, start)
                raise interrupt from None
        _finish(record, state, run_dir, start)
        if present is not None:
            _present(present, record, state, run_dir)
    return state


def _judging(plan: Plan, state: RunState) -> None:
    """What this run is judged by: the recipe's pinned figures bind a run of the recipe as written
    (or with expect.strict); an exploration shows them and lets equivalence decide."""
    state.model = plan.spec.model.name or ""
    state.scenario_changes = scenario_changes(state.overrides)
    state.pinned_binding = plan.spec.expect.strict or not state.scenario_changes
    state.key_metrics = plan.spec.report.key_metrics or [
        key for key in flatten_expectations(plan.spec.expect.metrics) if "*" not in key]


def _finish(record: RunRecord, state: RunState, run_dir: Path, start: float) -> None:
    state.timings["total"] = round(time.perf_counter() - start, 6)
    state.settle()
    log.info("run finished: %s", state.status)
    _write_summary(record, state, run_dir)


def _present(present: Callable[[RunState, Path], None], record: RunRecord, state: RunState, run_dir: Path) -> None:
    """Show the outcome; a terminal that cannot take it (closed pipe, odd stream) makes the run an error."""
    try:
        present(state, run_dir)
    except Exception as exc:  # noqa: BLE001
        log.error("printing the summary failed\n%s", traceback.format_exc())
        state.error = {"stage": "print", "type": type(exc).__name__,
                       "message": f"printing the summary to the terminal (stdout) failed: {type(exc).__name__}: "
                                  f"{first_line(exc)}"}
        state.settle()
        _write_summary(record, state, run_dir)


def _write_summary(record: RunRecord, state: RunState, run_dir: Path) -> None:
    """Write summary.json; when the full summary cannot be written, try a minimal one, then give up loudly."""
    try:
        record.write_json("summary.json", state.summary(run_dir))
        return
    except Exception as exc:  # noqa: BLE001 - e.g. a fact json cannot encode, or the disk is full
        log.error("writing summary.json failed\n%s", traceback.format_exc())
        first = exc
    minimal = {"recipe": state.recipe, "status": "error" if state.status != "running" else "running",
               "error": {"stage": "record", "type": type(first).__name__,
                         "message": f"writing summary.json in {run_dir} failed: {type(first).__name__}: "
                                    f"{first_line(first)}"},
               "run_dir": str(run_dir)}
    try:
        record.write_json("summary.json", minimal)
    except Exception as exc:  # noqa: BLE001
        raise RecordError(f"cannot write summary.json in {run_dir} (hydra.run.dir): {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    if state.status != "running":
        state.status = "error"
        state.error = minimal["error"]


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """Send the `fxflow` logger to the record's fxflow.log, unless a handler (Hydra's) already writes there."""
    logger = logging.getLogger("fxflow")
    target = str(path.resolve())
    for candidate in (logger, logging.getLogger()):
        if any(getattr(h, "baseFilename", None) == target for h in candidate.handlers):
            yield
            return
    try:
        handler = logging.FileHandler(target, encoding="utf-8")
    except OSError:
        yield  # no log file; summary.json still says what happened
        return
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


@contextmanager
def _stderr_to_log() -> Iterator[None]:
    """Library chatter on stderr goes to fxflow.log, not the terminal: torch's ShapeProp, for one,
    prints a full traceback before re-raising, and the run reports that failure in one message."""
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        if buffer.getvalue().strip():
            log.warning("written to stderr during the run:\n%s", buffer.getvalue().rstrip())


def _execute(plan: Plan, record: RunRecord, state: RunState) -> None:
    with _torch_threads(plan.spec.threads), run_limit(plan.spec.timeout_s):
        _run_stages(plan, record, state)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the run, restored after it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_stages(plan: Plan, record: RunRecord, state: RunState) -> None:
    options = plan.spec.report
    model, inputs = _build(plan, state)
    modules: dict[str, Any] = {}
    try:
        gm = _trace(plan, model, inputs, state)
        modules["trace"] = gm
        _record_stage(record, state, 0, "trace", None, gm, options)
        judge = _Equivalence(plan, model, state)
        if "trace" in judge.stages:
            state.checks.append(judge("trace", gm))
        failure = _apply_transforms(plan, modules, inputs, record, state, judge, options)
        with state.timed("checks"), stage_deadline("checks", "expect"):
            _settle_checks(plan, modules, failure, judge, state)
    except StepError as exc:
        if exc.step == "record":
            raise
        raise _blame_inputs(model, inputs, plan, exc) from exc.cause
    finally:
        _close_stages(modules)


def _close_stages(modules: dict[str, Any]) -> None:
    """However the run ends, release what stage modules hold (worker processes): every module
    whose class defines `close()` is closed."""
    for name, module in modules.items():
        if callable(getattr(type(module), "close", None)):
            try:
                module.close()
            except Exception:  # noqa: BLE001 - closing one stage must not hide the run's outcome
                log.warning("closing stage %s failed\n%s", name, traceback.format_exc())


def _build(plan: Plan, state: RunState) -> tuple[Any, InputSet]:
    spec = plan.spec
    with state.timed("build"):
        with _step("build", "model.module"):
            torch.manual_seed(spec.seed)
            model = plan.model_factory(**{k: v for k, v in spec.model.module.items() if k != "_target_"})
            if isinstance(model, torch.nn.Module):
                model.train(spec.model.train)
        with _step("build", "model.inputs"):
            inputs = make_inputs(spec.model.inputs, spec.seed)
    state.facts["build"] = _model_facts(model)
    return model, inputs


def _trace(plan: Plan, model: Any, inputs: InputSet, state: RunState) -> torch.fx.GraphModule:
    unused = plan.tracer.unused_settings(model)
    if unused:
        raise ConfigError([Problem(f"tracer.{field}", message, None, accepted) for field, message, accepted in unused])
    with state.timed("trace"), _step("trace", "tracer", plan):
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(plan.spec.seed + TRACE_RNG_OFFSET)
            gm = plan.tracer.trace(model, dict(inputs))
    for warning in caught:  # tracer chatter (the meta tracer warns per node) goes to the log, not the terminal
        log.warning("trace: %s", warning.message)
    state.stages.append("trace")
    state.facts["trace"] = {"tracer": type(plan.tracer).__name__, "graph_node_count": len(gm.graph.nodes),
                            "warnings": len(caught)}
    return gm


@dataclass
class _Failure:
    stage: str
    error: BaseException


def _apply_transforms(plan: Plan, modules: dict[str, Any], inputs: InputSet, record: RunRecord, state: RunState,
                      judge: "_Equivalence", options: ReportSpec) -> _Failure | None:
    """Apply each transform in order to the trace (`modules["trace"]`), recording and checking each
    stage; stop at the first that raises. Adds every completed stage's module to `modules` by name;
    returns the failure, if any."""
    devices = [d.model_copy(update={"name": d.name or key}) for key, d in plan.spec.devices.items()]
    gm = modules["trace"]
    for index, (name, transform) in enumerate(plan.transforms.items(), start=1):
        ctx = StageContext(name, inputs, devices, record.path(name))
        try:
            with state.timed(f"transform.{name}", step=name), stage_deadline(f"transform {name}", f"transforms.{name}"):
                out = transform.apply(gm, ctx)
        except (RequirementMissing, StageTimeout):
            raise
        except Exception as exc:  # noqa: BLE001 - judged against expect.error in _settle_checks
            state.facts[name] = ctx.facts
            log.info("stage %s raised %s: %s", name, type(exc).__name__, exc)
            return _Failure(name, exc)
        state.facts[name] = ctx.facts
        state.stages.append(name)
        if transform.probe:
            state.notes.append(f"{name} is a probe: it inspects without changing the module, so equivalence "
                               "does not apply to it")
        modules[name] = out
        _record_stage(record, state, index, name, gm, out, options)
        gm = out
        if name in judge.stages:
            with state.timed(f"check.{name}", step=name):
                state.checks.append(judge(name, out))
    return None


def _record_stage(record: RunRecord, state: RunState, index: int, name: str, before: Any, after: Any,
                  options: ReportSpec) -> None:
    """The stage's graph facts and files, and the reports its facts call for."""
    state.facts.setdefault(name, {})["graph"] = graph_facts(after)
    files: list[str] = []
    try:
        if isinstance(after, torch.fx.GraphModule):
            files += write_stage_graph(record, index, name, after)
        for report in reports_for(state.facts.get(name, {})):
            files += report.write(record, name, state.facts[name], before, after, options)
            state.report.extend(report.terminal(name, state.facts[name]))
    except Exception as exc:  # noqa: BLE001
        raise StepError("record", f"writing the record of stage {name} into {record.run_dir} (hydra.run.dir) "
                        f"failed: {type(exc).__name__}: {first_line(exc)}", exc) from exc
    state.files[name] = files


def _settle_checks(plan: Plan, modules: dict[str, Any], failure: _Failure | None, judge: "_Equivalence",
                   state: RunState) -> None:
    """Judge a refusal against `expect.error`, prove the last good stage, check expected raises,
    then the expected figures; the recipe's pinned ones bind unless the run is an exploration."""
    expected = plan.spec.expect.error
    error_check = check_error(expected, failure.stage if failure else None, failure.error if failure else None)
    if failure and (error_check is None or not error_check.passed):
        transform = plan.transforms[failure.stage]
        raise StepError(failure.stage, f"transforms.{failure.stage} ({type(transform).__name__}) failed: "
                        f"{type(failure.error).__name__}: {_cause_line(failure.error)}", failure.error)
    last_good = [stage for stage in modules if stage in plan.comparable_stages][-1]
    if failure and last_good not in judge.stages and judge.stages:
        state.checks.append(judge(last_good, modules[last_good]))  # the refusal was the point; prove what completed
    if judge.skip_reason is not None:
        state.checks.append(Check("equivalence", "skip", True, detail=f"not compared: {judge.skip_reason}"))
    pinned = [error_check] if error_check is not None else []
    for index, raise_ in enumerate(plan.spec.expect.raises):
        stage = raise_.stage or list(modules)[-1]
        with _step("checks", f"expect.raises.{index}.inputs"):
            inputs = make_inputs({**plan.spec.model.inputs, **raise_.inputs}, plan.spec.seed)
        name = f"raises.{stage}" + (f".{index}" if len(plan.spec.expect.raises) > 1 else "")
        pinned.append(check_raises(name, stage, modules[stage], judge.reference if raise_.reference else None,
                                   inputs, judge.replay, raise_))
    pinned += check_metrics(flatten(state.facts), plan.spec.expect.metrics)
    for check in pinned:
        check.binding = state.pinned_binding
    state.checks.extend(pinned)


class _Equivalence:
    """Which stages to prove, against what, on which inputs: one call per stage gives its Check.

    A call that raises (the reference or the stage crashing on an input set) is a StepError
    naming the config key to look at, not a difference.
    """

    def __init__(self, plan: Plan, model: Any, state: RunState):
        spec = plan.spec.equivalence
        self.plan = plan
        self.skip_reason = spec.skip_reason if spec.stages == [] else None
        with _step("checks", "equivalence.reference" if spec.reference else "model.module"):
            self.reference = _reference(plan, model)
        with _step("checks", "model.inputs"):
            self.sets = input_sets(plan.spec.model.inputs, plan.spec.seed, spec.fresh_inputs)
        self.replay = plan.spec.seed + TRACE_RNG_OFFSET if spec.replay_rng else None
        self.tolerances = spec.tolerances
        if spec.stages == "all":
            self.stages = set(plan.comparable_stages)
        elif spec.stages == "final":
            self.stages = {plan.comparable_stages[-1]}
        else:
            self.stages = set(spec.stages)

    def __call__(self, stage: str, module: Callable[..., Any]) -> Check:
        try:
            with stage_deadline(f"the equivalence check of stage {stage}", "equivalence"):
                return check_equivalence(stage, module, self.reference, self.sets, self.replay, self.tolerances)
        except CallFailed as exc:
            if exc.side == "reference":
                key = "equivalence.reference" if self.plan.spec.equivalence.reference else "model.module"
                who = self.reference.label
            else:
                key = "tracer" if stage == "trace" else f"transforms.{stage}"
                who = f"module of stage {stage}"
            raise StepError("checks", f"checking stage {stage}: the {who} ({key}) raised on input set "
                            f"{exc.input_set}: {type(exc.cause).__name__}: {_cause_line(exc.cause)}",
                            exc.cause) from exc


def _reference(plan: Plan, model: Any) -> Reference:
    ref = plan.spec.equivalence.reference
    if ref is None:
        return Reference(model, "eager model" + (" (trace-time RNG replayed)" if plan.spec.equivalence.replay_rng else ""))
    built = plan.reference_factory(**{k: v for k, v in ref.items() if k != "_target_"})
    return Reference(built, f"reference model {ref['_target_']}")


def _blame_inputs(model: Any, inputs: InputSet, plan: Plan, exc: StepError) -> StepError:
    """When a step broke because the eager model itself rejects the declared inputs, say so:
    the fix is in `model.inputs`, and torch's own first line says why; when the model's own code
    raises, the fix is in `model.module` (fxflow.blame says which)."""
    try:
        with stage_deadline(exc.step, "model.module"), torch.random.fork_rng(devices=[]), torch.no_grad():
            inputs.call(model)
    except StageTimeout:
        return exc  # the eager model never returns either: the step's own message stands
    except Exception as cause:  # noqa: BLE001 - this is the diagnosis
        if raised_by_model_code(cause):  # its own raise/assert, not an operator refusing the inputs
            return StepError(exc.step, f"the model ({plan.spec.model.module.get('_target_')}, model.module) raises "
                             f"from its own code when called: {type(cause).__name__}: {_cause_line(cause)}", cause)
        declared = ", ".join(f"{name} {_describe(spec)}" for name, spec in plan.spec.model.inputs.items())
        return StepError(exc.step, f"the inputs declared under model.inputs ({declared}) do not fit the model "
                         f"({plan.spec.model.module.get('_target_')}): {type(cause).__name__}: {_cause_line(cause)}",
                         cause)
    return exc


def _describe(spec: Any) -> str:
    return f"{spec.dtype}{spec.shape}" if spec.shape is not None else f"value {spec.value!r}"


@contextmanager
def _step(step: str, key: str, plan: Plan | None = None) -> Iterator[None]:
    """Run a build, trace or checks step: stopped past timeout_s (fxflow.deadline), its failures told
    in one message naming the config key."""
    with stage_deadline(step, key), _step_errors(step, key, plan):
        yield


@contextmanager
def _step_errors(step: str, key: str, plan: Plan | None = None) -> Iterator[None]:
    """Turn an exception in build or trace into one message naming the config key."""
    try:
        yield
    except RequirementMissing:
        raise  # the machine lacks something (torchvision for a model): skipped, not an error
    except Exception as exc:  # noqa: BLE001
        first = _cause_line(exc)
        if step == "trace":
            message = (
                f"the model cannot be traced by {type(plan.tracer).__name__} ({key}._target_): "
                f"{type(exc).__name__}: {first}. Accepted: a model whose control flow does not depend on tensor "
                "values; otherwise pick tracer=meta (shape-dependent code), tracer=rewriting (assert statements), "
                "or set tracer.concrete_args / tracer.leaf_modules"
            )
        elif key == "model.inputs":
            message = f"drawing the example inputs ({key}) failed: {type(exc).__name__}: {first}"
        elif step == "checks":
            message = f"preparing the equivalence checks ({key}) failed: {type(exc).__name__}: {first}"
        else:
            message = f"building the model ({key}) failed: {type(exc).__name__}: {first}"
        raise StepError(step, message, exc) from exc


def key_of(step: str) -> str:
    """The config key a step is driven by, for messages about failures outside the step wrappers."""
    fixed = {"validate": "the config", "build": "model.module", "trace": "tracer", "checks": "equivalence / expect",
             "record": "hydra.run.dir", "print": "stdout"}
    return fixed.get(step, f"transforms.{step}")


def _cause_line(exc: BaseException) -> str:
    """The first line of the innermost cause (torch's own words), after the outer line when they differ.

    Wrappers such as ShapeProp re-raise with their own text and "Original traceback: None";
    the cause at the bottom of the chain says what actually went wrong.
    """
    inner = exc
    seen = {id(exc)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    outer = first_line(exc)
    if inner is exc:
        return outer
    return f"{outer} (caused by {type(inner).__name__}: {first_line(inner)})"


def _model_facts(model: Any) -> dict[str, Any]:
    if not isinstance(model, torch.nn.Module):
        return {"kind": "function", "name": getattr(model, "__name__", str(model))}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"kind": "module", "class": type(model).__name__, "parameter_bytes": params, "buffer_bytes": buffers}
