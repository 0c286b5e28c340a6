"""The steps of a run and how each words its own failure.

A `RunStep` carries the name the record gives it (`error.stage`), the config key a person should
look at, and what it was doing; whoever knows the step (the runner for build, the tracer for
trace, a transform for its stage) supplies those, so a failure message never comes from a
table of step names. `guard()` turns any exception inside the step into one `StepError`.
"""

from __future__ import annotations

import logging
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from fxflow.blame import raised_by_model_code
from fxflow.config.errors import ConfigError, first_line
from fxflow.deadline import StageTimeout, stage_deadline
from fxflow.requirements import RequirementMissing

log = logging.getLogger("fxflow")


class StepError(Exception):
    """An unexpected failure inside a named step, with a message meant for people."""

    def __init__(self, step: str, message: str, cause: BaseException):
        super().__init__(message)
        self.step = step
        self.cause = cause


@dataclass(frozen=True)
class RunStep:
    """One step of a run: `name` as recorded, the config `key` behind it, what it was `doing` (in
    words that name the key), how its failure reads (`failed`), and optional `advice` (what
    would be accepted instead)."""

    name: str
    key: str
    doing: str
    advice: str = ""
    failed: str = "failed"

    def message(self, exc: BaseException) -> str:
        text = f"{' '.join(filter(None, (self.doing, self.failed)))}: {type(exc).__name__}: {cause_line(exc)}"
        return f"{text}. Accepted: {self.advice}" if self.advice else text

    def error(self, exc: BaseException) -> StepError:
        return StepError(self.name, self.message(exc), exc)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Any exception inside becomes this step's StepError; a missing requirement stays
        itself (the run is skipped, not broken) and so does a StepError raised deeper down."""
        with stage_deadline(self.name, self.key):  # stopped past timeout_s (fxflow.deadline)
            try:
                yield
            except (RequirementMissing, StepError, StageTimeout):
                raise
            except Exception as exc:  # noqa: BLE001 - reported with the step's key
                raise self.error(exc) from exc


VALIDATE = RunStep("validate", "the config", "validating the config")
BUILD = RunStep("build", "model.module", "building the model (model.module)")
INPUTS = RunStep("build", "model.inputs", "drawing the example inputs (model.inputs)")
CHECKS = RunStep("checks", "equivalence / expect", "preparing the equivalence checks (equivalence / expect)")
RECORD = RunStep("record", "hydra.run.dir", "writing the run record (hydra.run.dir)")
PRINT = RunStep("print", "stdout", "printing the summary to the terminal (stdout)")
FIXED_STEPS = (VALIDATE, BUILD, CHECKS, RECORD, PRINT)


def key_of(step: str) -> str:
    """The config key a step is driven by; a name that is no fixed step is a transform's."""
    return next((s.key for s in FIXED_STEPS if s.name == step), f"transforms.{step}")


def error_entry(exc: Exception, step: str) -> dict[str, Any]:
    """summary.json's `error` for an exception that ended the run during `step` (logged in full to
    fxflow.log): a ConfigError lists its problems, a StepError carries the words of the step that
    failed, anything else is named by the step's config key."""
    if isinstance(exc, ConfigError):
        log.error(exc.render())
        return {"stage": "config", "type": "ConfigError", "message": exc.render(),
                "problems": [p.render() for p in exc.problems]}
    if isinstance(exc, StageTimeout):
        log.error("step %s stopped: %s", step, exc)
        return {"stage": step, "type": "StageTimeout", "message": str(exc)}
    if isinstance(exc, StepError):
        log.error("step %s failed: %s\n%s", exc.step, exc, "".join(traceback.format_exception(exc.cause)))
        return {"stage": exc.step, "type": type(exc.cause).__name__, "message": str(exc)}
    log.error("step %s failed\n%s", step, "".join(traceback.format_exception(exc)))
    return {"stage": step, "type": type(exc).__name__,
            "message": f"{step} failed ({key_of(step)}): {type(exc).__name__}: {first_line(exc)}"}


def cause_line(exc: BaseException) -> str:
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


def blame_inputs(exc: StepError, model: Any, inputs: Any, spec: Any) -> StepError:
    """When a step broke because the eager model itself rejects the declared inputs (`spec` is the
    model section), say so: the fix is in `model.inputs`, and torch's own first line says why; when
    the model's own code raises, the fix is in `model.module` (fxflow.blame says which)."""
    try:
        with stage_deadline(exc.step, "model.module"), torch.random.fork_rng(devices=[]), torch.no_grad():
            inputs.call(model)
    except StageTimeout:
        return exc  # the eager model never returns either: the step's own message stands
    except Exception as cause:  # noqa: BLE001 - this is the diagnosis
        if raised_by_model_code(cause):  # its own raise/assert, not an operator refusing the inputs
            return StepError(exc.step, f"the model ({spec.module.get('_target_')}, model.module) raises from its own "
                             f"code when called: {type(cause).__name__}: {cause_line(cause)}", cause)
        described = ", ".join(f"{name} {_describe(item)}" for name, item in spec.inputs.items())
        return StepError(exc.step, f"the inputs declared under model.inputs ({described}) do not fit the model "
                         f"({spec.module.get('_target_')}): {type(cause).__name__}: {cause_line(cause)}", cause)
    return exc


def _describe(spec: Any) -> str:
    return f"{spec.dtype}{spec.shape}" if spec.shape is not None else f"value {spec.value!r}"
