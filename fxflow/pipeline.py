"""One run, in one direction: validate → build → trace → transforms → checks → record."""

from __future__ import annotations

import logging
import platform
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import DictConfig, OmegaConf

import fxflow
from fxflow.checks.equivalence import Reference, check_equivalence
from fxflow.checks.expectations import check_error, check_metrics, flatten
from fxflow.config.errors import ConfigError
from fxflow.config.validate import Plan, resolve, validate
from fxflow.inputs import input_sets, make_inputs
from fxflow.record.graphs import write_stage_graph
from fxflow.record.writer import RunRecord
from fxflow.transforms.base import StageContext

log = logging.getLogger("fxflow")


class StageError(Exception):
    """An unexpected failure inside a named stage, with a message meant for people."""

    def __init__(self, stage: str, message: str, cause: BaseException):
        super().__init__(message)
        self.stage = stage
        self.cause = cause


@dataclass
class RunState:
    """Everything a run accumulates; turned into summary.json at the end."""

    recipe: str
    overrides: list[str]
    status: str = "error"
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    report: list[Any] = field(default_factory=list)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 6)

    def summary(self, run_dir: Path) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "status": self.status,
            "metrics": flatten(self.facts),
            "checks": self.checks,
            "stages": self.stages,
            "timings": self.timings,
            "error": self.error,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "fxflow": fxflow.__version__},
            "overrides": self.overrides,
            "run_dir": str(run_dir),
        }


def run_job(cfg: DictConfig | dict[str, Any], run_dir: Path, overrides: list[str], files: list[str] = ()) -> RunState:
    """Run one composed config and write its record; never raises for a bad config or a failing stage."""
    record = RunRecord(run_dir)
    recipe = OmegaConf.select(OmegaConf.create(cfg), "recipe", default="?", throw_on_resolution_failure=False)
    state = RunState(recipe=str(recipe), overrides=list(overrides))
    start = time.perf_counter()
    try:
        with state.timed("validate"):
            container = resolve(cfg)
            plan = validate(container, files)
        record.write_text("config.yaml", OmegaConf.to_yaml(container))
        _execute(plan, record, state)
    except ConfigError as exc:
        exc.recipe, exc.files = exc.recipe or state.recipe, exc.files or list(files)
        state.error = {"stage": "config", "type": "ConfigError", "message": exc.render(),
                       "problems": [p.render() for p in exc.problems]}
        log.error(exc.render())
    except StageError as exc:
        state.error = {"stage": exc.stage, "type": type(exc.cause).__name__, "message": str(exc)}
        log.error("stage %s failed: %s\n%s", exc.stage, exc, "".join(traceback.format_exception(exc.cause)))
    state.timings["total"] = round(time.perf_counter() - start, 6)
    if state.error is None:
        state.status = "passed" if state.checks and all(c["passed"] for c in state.checks) else "failed"
    record.write_json("summary.json", state.summary(run_dir))
    return state


def _execute(plan: Plan, record: RunRecord, state: RunState) -> None:
    spec = plan.spec
    with state.timed("build"), _stage("build", "model.module"):
        torch.manual_seed(spec.seed)
        model = plan.model_factory(**{k: v for k, v in spec.model.module.items() if k != "_target_"})
        if isinstance(model, torch.nn.Module):
            model.train(spec.model.train)
        inputs = make_inputs(spec.model.inputs, spec.seed)
    state.stages.append("build")
    state.facts["build"] = _model_facts(model)

    trace_rng = spec.seed + 1_000_003  # the RNG state forward-time random calls see while tracing
    with state.timed("trace"), _stage("trace", "tracer", plan):
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(trace_rng)
            gm = plan.tracer.trace(model, inputs)
    for warning in caught:  # tracer chatter (the meta tracer warns per node) goes to the log, not the terminal
        log.warning("trace: %s", warning.message)
    state.stages.append("trace")
    state.facts["trace"] = {"tracer": type(plan.tracer).__name__, "graph_node_count": len(gm.graph.nodes),
                            "warnings": len(caught)}
    write_stage_graph(record, 0, "trace", gm)

    replay = trace_rng if spec.check.replay_rng else None
    reference = _reference(plan, model)
    checked = _checked_stages(plan)
    sets = input_sets(spec.model.inputs, spec.seed, spec.check.fresh_inputs)
    if "trace" in checked:
        state.checks.append(check_equivalence("trace", gm, reference, sets, replay, spec.check.tolerances))

    failure: tuple[str, BaseException] | None = None
    last_good = ("trace", gm)
    devices = _devices(spec)
    for index, (name, transform) in enumerate(plan.transforms.items(), start=1):
        ctx = StageContext(name, model, list(inputs.values()), devices, spec.seed, state.facts, record)
        try:
            with state.timed(f"transform.{name}"):
                gm = transform.apply(gm, ctx)
        except Exception as exc:  # noqa: BLE001 - reported as the stage's failure below
            state.facts[name] = ctx.facts
            failure = (name, exc)
            break
        state.facts[name] = ctx.facts
        state.stages.append(name)
        state.report.extend(transform.report(ctx.facts))
        write_stage_graph(record, index, name, gm)
        last_good = (name, gm)
        if name in checked:
            with state.timed(f"check.{name}"):
                state.checks.append(check_equivalence(name, gm, reference, sets, replay, spec.check.tolerances))

    expected_error = spec.expect.error
    error_check = check_error(expected_error, *(failure or (None, None)))
    if failure and (error_check is None or not error_check["passed"]):
        stage, exc = failure
        raise StageError(stage, f"transforms.{stage} ({type(plan.transforms[stage]).__name__}) failed: {exc}", exc)
    if failure and last_good[0] not in checked:
        # The refusal was the point; still prove the last stage that did complete.
        state.checks.append(check_equivalence(last_good[0], last_good[1], reference, sets, replay, spec.check.tolerances))
    if error_check is not None:
        state.checks.append(error_check)
    state.checks.extend(check_metrics(flatten(state.facts), spec.expect.metrics))


@contextmanager
def _stage(stage: str, key: str, plan: Plan | None = None) -> Iterator[None]:
    """Turn an exception in build or trace into one message naming the config key."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if stage == "trace":
            message = (
                f"the model cannot be traced by {type(plan.tracer).__name__} ({key}._target_): "
                f"{type(exc).__name__}: {first}. Accepted: a model whose control flow does not depend on tensor "
                "values; otherwise pick tracer=meta (shape-dependent code), tracer=rewriting (assert statements), "
                "or set tracer.concrete_args / tracer.leaf_modules"
            )
        else:
            message = f"building the model ({key}) failed: {type(exc).__name__}: {first}"
        raise StageError(stage, message, exc) from exc


def _reference(plan: Plan, model: Any) -> Reference:
    ref = plan.spec.check.reference
    if ref is None:
        return Reference(model, "eager model" + (" (trace-time RNG replayed)" if plan.spec.check.replay_rng else ""))
    built = plan.reference_factory(**{k: v for k, v in ref.items() if k != "_target_"})
    return Reference(built, f"reference model {ref['_target_']}")


def _checked_stages(plan: Plan) -> set[str]:
    stages = plan.spec.check.stages
    if stages == "all":
        return set(plan.stages)
    if stages == "final":
        return {plan.stages[-1]}
    return set(stages)


def _devices(spec: Any) -> list[Any]:
    return [d.model_copy(update={"name": d.name or key}) for key, d in spec.devices.items()]


def _model_facts(model: Any) -> dict[str, Any]:
    if not isinstance(model, torch.nn.Module):
        return {"kind": "function", "name": getattr(model, "__name__", str(model))}
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"kind": "module", "class": type(model).__name__, "parameter_bytes": params, "buffer_bytes": buffers}
