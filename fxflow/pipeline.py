"""One run, in one direction: validate → build → trace → transforms → checks → record.

`run_job` never raises for a bad config or a failing step: whatever happens ends in a
complete summary.json whose status says passed, failed or error.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from fxflow.checks.equivalence import Reference, check_equivalence
from fxflow.checks.expectations import check_error, check_metrics, check_raises, flatten_expectations
from fxflow.checks.scenario import scenario_changes
from fxflow.checks.result import Check
from fxflow.config.errors import ConfigError
from fxflow.config.schema import ReportSpec
from fxflow.config.validate import resolve
from fxflow.facts import flatten
from fxflow.inputs import InputSet, input_sets, make_inputs
from fxflow.nodes import graph_facts
from fxflow.plan import Plan, plan_run
from fxflow.record.graphs import write_stage_graph
from fxflow.record.writer import RunRecord
from fxflow.reports.stage import reports_for
from fxflow.requirements import RequirementMissing, unmet
from fxflow.run_state import RunState
from fxflow.transforms.base import StageContext

log = logging.getLogger("fxflow")

TRACE_RNG_OFFSET = 1_000_003  # the trace-time RNG seed is the run's seed plus this


class StepError(Exception):
    """An unexpected failure inside a named step, with a message meant for people."""

    def __init__(self, step: str, message: str, cause: BaseException):
        super().__init__(message)
        self.step = step
        self.cause = cause


def run_job(cfg: DictConfig | dict[str, Any], run_dir: Path, overrides: list[str], files: list[str] = ()) -> RunState:
    """Run one composed config and write its record."""
    record = RunRecord(run_dir)
    recipe = OmegaConf.select(OmegaConf.create(cfg), "recipe", default="?", throw_on_resolution_failure=False)
    state = RunState(recipe=str(recipe), overrides=list(overrides))
    start = time.perf_counter()
    try:
        with state.timed("validate"):
            container = resolve(cfg)
            plan = plan_run(container, files)
        _judging(plan, state)
        record.write_text("config.yaml", OmegaConf.to_yaml(container))
        _execute(plan, record, state)
    except ConfigError as exc:
        exc.recipe, exc.files = exc.recipe or state.recipe, exc.files or list(files)
        state.error = {"stage": "config", "type": "ConfigError", "message": exc.render(),
                       "problems": [p.render() for p in exc.problems]}
        log.error(exc.render())
    except RequirementMissing as exc:
        state.skipped = f"{state.step}: {exc}"
        log.warning("skipped: %s", state.skipped)
    except StepError as exc:
        state.error = {"stage": exc.step, "type": type(exc.cause).__name__, "message": str(exc)}
        log.error("step %s failed: %s\n%s", exc.step, exc, "".join(traceback.format_exception(exc.cause)))
    except Exception as exc:  # noqa: BLE001 - any other failure still ends in a complete record
        state.error = {"stage": state.step, "type": type(exc).__name__,
                       "message": f"{state.step} failed: {type(exc).__name__}: {_first_line(exc)}"}
        log.error("step %s failed\n%s", state.step, traceback.format_exc())
    state.timings["total"] = round(time.perf_counter() - start, 6)
    state.settle()
    record.write_json("summary.json", state.summary(run_dir))
    return state


def _judging(plan: Plan, state: RunState) -> None:
    """What this run is judged by: the recipe's pinned figures bind a run of the recipe as written
    (or with expect.strict); an exploration shows them and lets equivalence decide."""
    state.model = plan.spec.model.name or ""
    state.scenario_changes = scenario_changes(state.overrides)
    state.pinned_binding = plan.spec.expect.strict or not state.scenario_changes
    state.key_metrics = plan.spec.report.key_metrics or [
        key for key in flatten_expectations(plan.spec.expect.metrics) if "*" not in key]


def _execute(plan: Plan, record: RunRecord, state: RunState) -> None:
    missing = unmet(plan.spec.requires) + unmet(plan.spec.model.requires)
    if missing:
        state.step = "requires"
        raise RequirementMissing("; ".join(missing))
    options = plan.spec.report
    model, inputs = _build(plan, state)
    gm = _trace(plan, model, inputs, state)
    _record_stage(record, state, 0, "trace", None, gm, options)
    judge = _Equivalence(plan, model)
    if "trace" in judge.stages:
        state.checks.append(judge("trace", gm))
    modules: dict[str, Any] = {"trace": gm}
    try:
        failure = _apply_transforms(plan, modules, inputs, record, state, judge, options)
        with state.timed("checks"):
            _settle_checks(plan, modules, failure, judge, state)
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
    with state.timed("build"), _step("build", "model.module"):
        torch.manual_seed(spec.seed)
        model = plan.model_factory(**{k: v for k, v in spec.model.module.items() if k != "_target_"})
        if isinstance(model, torch.nn.Module):
            model.train(spec.model.train)
        inputs = make_inputs(spec.model.inputs, spec.seed)
    state.facts["build"] = _model_facts(model)
    return model, inputs


def _trace(plan: Plan, model: Any, inputs: InputSet, state: RunState) -> torch.fx.GraphModule:
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
            with state.timed(f"transform.{name}", step=name):
                out = transform.apply(gm, ctx)
        except RequirementMissing:
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
    files = []
    if isinstance(after, torch.fx.GraphModule):
        files += write_stage_graph(record, index, name, after)
    for report in reports_for(state.facts.get(name, {})):
        files += report.write(record, name, state.facts[name], before, after, options)
        state.report.extend(report.terminal(name, state.facts[name]))
    state.files[name] = files


def _settle_checks(plan: Plan, modules: dict[str, Any], failure: _Failure | None, judge: "_Equivalence",
                   state: RunState) -> None:
    """Judge a refusal against `expect.error`, prove the last good stage, check expected raises,
    then the expected figures."""
    expected = plan.spec.expect.error
    error_check = check_error(expected, failure.stage if failure else None, failure.error if failure else None)
    if failure and (error_check is None or not error_check.passed):
        transform = plan.transforms[failure.stage]
        raise StepError(failure.stage, f"transforms.{failure.stage} ({type(transform).__name__}) failed: "
                        f"{type(failure.error).__name__}: {failure.error}", failure.error)
    last_good = [stage for stage in modules if stage in plan.comparable_stages][-1]
    if failure and last_good not in judge.stages:
        state.checks.append(judge(last_good, modules[last_good]))  # the refusal was the point; prove what completed
    pinned = [error_check] if error_check is not None else []
    for index, raise_ in enumerate(plan.spec.expect.raises):
        stage = raise_.stage or list(modules)[-1]
        inputs = make_inputs({**plan.spec.model.inputs, **raise_.inputs}, plan.spec.seed)
        name = f"raises.{stage}" + (f".{index}" if len(plan.spec.expect.raises) > 1 else "")
        pinned.append(check_raises(name, stage, modules[stage], judge.reference if raise_.reference else None,
                                   inputs, judge.replay, raise_))
    pinned += check_metrics(flatten(state.facts), plan.spec.expect.metrics)
    for check in pinned:
        check.binding = state.pinned_binding
    state.checks.extend(pinned)


class _Equivalence:
    """Which stages to prove, against what, on which inputs: one call per stage gives its Check."""

    def __init__(self, plan: Plan, model: Any):
        spec = plan.spec.equivalence
        self.reference = _reference(plan, model)
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
        return check_equivalence(stage, module, self.reference, self.sets, self.replay, self.tolerances)


def _reference(plan: Plan, model: Any) -> Reference:
    ref = plan.spec.equivalence.reference
    if ref is None:
        return Reference(model, "eager model" + (" (trace-time RNG replayed)" if plan.spec.equivalence.replay_rng else ""))
    built = plan.reference_factory(**{k: v for k, v in ref.items() if k != "_target_"})
    return Reference(built, f"reference model {ref['_target_']}")


@contextmanager
def _step(step: str, key: str, plan: Plan | None = None) -> Iterator[None]:
    """Turn an exception in build or trace into one message naming the config key."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        first = _first_line(exc)
        if step == "trace":
            message = (
                f"the model cannot be traced by {type(plan.tracer).__name__} ({key}._target_): "
                f"{type(exc).__name__}: {first}. Accepted: a model whose control flow does not depend on tensor "
                "values; otherwise pick tracer=meta (shape-dependent code), tracer=rewriting (assert statements), "
                "or set tracer.concrete_args / tracer.leaf_modules"
            )
        else:
            message = f"building the model ({key}) failed: {type(exc).__name__}: {first}"
        raise StepError(step, message, exc) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _model_facts(model: Any) -> dict[str, Any]:
    if not isinstance(model, torch.nn.Module):
        return {"kind": "function", "name": getattr(model, "__name__", str(model))}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"kind": "module", "class": type(model).__name__, "parameter_bytes": params, "buffer_bytes": buffers}
