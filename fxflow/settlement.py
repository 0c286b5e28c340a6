"""Check settlement: which stages are proven against what, and how a run's checks are settled
once its stages are done (a refusal judged against `expect.error`, expected raises, figures).

The runner calls `Equivalence` after each stage it proves and `settle_checks` once at the end;
what a check compares lives in `fxflow.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fxflow.checks.equivalence import CallFailed, Reference, ReferenceNotFinite, check_equivalence
from fxflow.checks.expectations import check_error, check_metrics, check_raises, flatten_expectations
from fxflow.checks.probe_failures import check_probe_failures
from fxflow.checks.scenario import scenario_changes
from fxflow.checks.result import Check
from fxflow.deadline import stage_deadline
from fxflow.facts import flatten
from fxflow.inputs import input_sets, make_inputs
from fxflow.plan import RunPlan
from fxflow.run_state import RunState
from fxflow.steps import CHECKS, INPUTS, RunStep, StepError, cause_line

TRACE_RNG_OFFSET = 1_000_003  # the trace-time RNG seed is the run's seed plus this


@dataclass
class Failure:
    """A transform that raised: the stage and what it raised, judged later against `expect.error`."""

    stage: str
    error: BaseException


class Equivalence:
    """Which stages to prove, against what, on which inputs: one call per stage gives its Check.

    A call that raises (the reference or the stage crashing on an input set) is a StepError
    naming the config key to look at, not a difference.
    """

    def __init__(self, plan: RunPlan, model: Any):
        spec = plan.spec.equivalence
        self.plan = plan
        self.skip_reason = spec.skip_reason if spec.stages == [] else None
        with RunStep(CHECKS.name, self.reference_key, f"preparing the equivalence checks ({self.reference_key})").guard():
            self.reference = _reference(plan, model)
        with RunStep(CHECKS.name, INPUTS.key, INPUTS.doing).guard():
            self.sets = input_sets(plan.spec.model.inputs, plan.spec.seed, spec.fresh_inputs, plan.policy)
        self.replay = plan.spec.seed + TRACE_RNG_OFFSET if spec.replay_rng else None
        self.tolerances = spec.tolerances
        if spec.stages == "all":
            self.stages = set(plan.comparable_stages)
        elif spec.stages == "final":
            self.stages = {plan.comparable_stages[-1]}
        else:
            self.stages = set(spec.stages)

    @property
    def reference_key(self) -> str:
        return "equivalence.reference" if self.plan.spec.equivalence.reference else "model.module"

    def __call__(self, stage: str, module: Callable[..., Any]) -> Check:
        try:
            with stage_deadline(f"the equivalence check of stage {stage}", "equivalence"):
                return check_equivalence(stage, module, self.reference, self.sets, self.replay, self.tolerances)
        except CallFailed as exc:
            if exc.side == "reference":
                key, who = self.reference_key, self.reference.label
            else:
                key, who = self.plan.step(stage).key, f"module of stage {stage}"
            raise StepError(CHECKS.name, f"checking stage {stage}: the {who} ({key}) raised on input set "
                            f"{exc.input_set}: {type(exc.cause).__name__}: {cause_line(exc.cause)}",
                            exc.cause) from exc
        except ReferenceNotFinite as exc:
            raise StepError(CHECKS.name, f"checking stage {stage} against the {self.reference.label}: {exc}", exc) from exc


def _reference(plan: RunPlan, model: Any) -> Reference:
    ref = plan.spec.equivalence.reference
    if ref is None:
        return Reference(model, "eager model" + (" (trace-time RNG replayed)" if plan.spec.equivalence.replay_rng else ""))
    built = plan.reference_factory(**{k: v for k, v in ref.items() if k != "_target_"})
    return Reference(built, f"reference model {ref['_target_']}")


def judge_by(plan: RunPlan, state: RunState) -> None:
    """What this run is judged by: the recipe's pinned figures bind a run of the recipe as written
    (or with expect.strict); an exploration shows them and lets equivalence decide."""
    state.model = plan.spec.model.name or ""
    state.scenario_changes = scenario_changes(state.overrides)
    state.pinned_binding = plan.spec.expect.strict or not state.scenario_changes
    state.key_metrics = plan.spec.report.key_metrics or [
        key for key in flatten_expectations(plan.spec.expect.metrics) if "*" not in key]


def settle_checks(plan: RunPlan, modules: dict[str, Any], failure: Failure | None, judge: Equivalence,
                  state: RunState) -> None:
    """Judge a refusal against `expect.error`, prove the last good stage, check expected raises,
    then the expected figures; the recipe's pinned ones bind unless the run is an exploration."""
    expected = plan.spec.expect.error
    error_check = check_error(expected, failure.stage if failure else None, failure.error if failure else None)
    if failure and (error_check is None or not error_check.passed):
        raise plan.step(failure.stage).error(failure.error)
    last_good = [stage for stage in modules if stage in plan.comparable_stages][-1]
    if failure and last_good not in judge.stages and judge.stages:
        state.checks.append(judge(last_good, modules[last_good]))  # the refusal was the point; prove what completed
    if judge.skip_reason is not None:
        state.checks.append(Check("equivalence", "skip", True, detail=f"not compared: {judge.skip_reason}"))
    pinned = [error_check] if error_check is not None else []
    for index, raise_ in enumerate(plan.spec.expect.raises):
        stage = raise_.stage or list(modules)[-1]
        key = f"expect.raises.{index}.inputs"
        with RunStep(CHECKS.name, key, f"drawing the inputs of an expected raise ({key})").guard():
            inputs = make_inputs({**plan.spec.model.inputs, **raise_.inputs}, plan.spec.seed, plan.policy)
        name = f"raises.{stage}" + (f".{index}" if len(plan.spec.expect.raises) > 1 else "")
        pinned.append(check_raises(name, stage, modules[stage], judge.reference if raise_.reference else None,
                                   inputs, judge.replay, raise_))
    pinned += check_metrics(flatten(state.facts), plan.spec.expect.metrics)
    for check in pinned:
        check.binding = state.pinned_binding
    state.checks.extend(pinned)
    state.checks.extend(check_probe_failures(plan.transforms, state.facts))  # binding in every scenario
