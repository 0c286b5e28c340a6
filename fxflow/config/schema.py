"""The pydantic schema of a composed fxflow config.

Component sections (`tracer`, each transform, latency models) are checked here only for
shape (a mapping with `_target_`); `fxflow.config.components` resolves and validates them
against the component's own pydantic fields.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import math

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fxflow.config.names import SAFE_NAME, SAFE_NAME_RULE

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
DTYPES = (*FLOAT_DTYPES, "int64", "int32", "int16", "int8", "uint8", "bool")
_ITEM_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
               "uint8": 1, "bool": 1}
_INT_RANGE = {"int64": (-2**63, 2**63 - 1), "int32": (-2**31, 2**31 - 1), "int16": (-2**15, 2**15 - 1),
              "int8": (-128, 127), "uint8": (0, 255), "bool": (0, 1)}
DISTRIBUTIONS = ("rand", "randn", "randint", "zeros", "ones")
MEMORY_CEILING = 2**50  # 1 PiB: no device budget is larger; a bigger figure is a typo (or an overflow)
INPUT_CEILING = 2**30  # 1 GiB per example input: larger inputs do not belong in a graph experiment
TOLERANCE_CEILING = 0.1  # looser than this, a changed computation passes as equivalent
FRESH_INPUTS_CEILING = 64
SEED_CEILING = 2**32 - 1
TIMEOUT_CEILING = 86_400  # one day per stage: a longer limit is no limit
MEMORY_FORMS = ("a positive number of bytes (33000000) or a size with a byte unit (33MB = 33,000,000 B, "
                "32MiB = 33,554,432 B, 1.5GB), at most 1 PiB")
DEVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PositiveFinite = Annotated[FiniteFloat, Field(gt=0)]


# Byte units exactly as written: decimal kB/KB (1000), MB, GB, TB, PB and binary KiB (1024), MiB, ...
# Case matters: a lowercase `b` means bits (`4 Kb`, `4 mb` are refused, never read as bytes).
MEMORY_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
                "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}
_MEMORY_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def _parse_memory(value: Any) -> int:
    """Accept plain bytes as torch's tests write them and byte units as written (`20 KB` is 20,000 B,
    `20 KiB` 20,480 B); refuse bits and wrong case (`4 Kb`, `4 mb`) rather than guess."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MEMORY_CEILING:
        value = int(value)  # 33000000.0 from a YAML or JSON that wrote it so
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("memory", "is not a memory size; expected " + MEMORY_FORMS)
    size = value if isinstance(value, int) else _memory_text(value)
    if size <= 0:
        raise PydanticCustomError("memory", "must be positive; expected " + MEMORY_FORMS)
    if size > MEMORY_CEILING:
        raise PydanticCustomError("memory", "is above the ceiling of 1 PiB (2**50 bytes); expected " + MEMORY_FORMS)
    return size


def _memory_text(text: str) -> int:
    match = _MEMORY_TEXT.fullmatch(text)
    if match is None:
        raise PydanticCustomError("memory", "is not a memory size; expected " + MEMORY_FORMS)
    number, unit = match.groups()
    if unit not in MEMORY_UNITS and unit:
        near = next((u for u in MEMORY_UNITS if u.lower() == unit.lower()), None)
        bits = "; a lowercase b means bits" if unit.endswith("b") else ""
        hint = f" (did you mean {number}{near}?)" if near else ""
        raise PydanticCustomError("memory", "has the unit {unit}, which is not a byte unit{bits}{hint}; expected "
                                  + MEMORY_FORMS + " (units: " + ", ".join(MEMORY_UNITS) + ")",
                                  {"unit": unit, "bits": bits, "hint": hint})
    size = float(number) * MEMORY_UNITS[unit or "B"]
    if size != int(size):
        raise PydanticCustomError("memory", "is not a whole number of bytes; expected " + MEMORY_FORMS)
    return int(size)


def memory_bytes(value: Any) -> int:
    """The bytes a memory size means (`20 KB` -> 20000); PydanticCustomError when it is not one."""
    return _parse_memory(value)


MemBytes = Annotated[int, BeforeValidator(_parse_memory)]


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


class DeviceSpec(Strict):
    """One logical device. The mapping key is its name unless `name` says otherwise."""

    name: str | None = Field(None, pattern=DEVICE_NAME)
    mem_bytes: MemBytes
    logical_id: NonNegativeInt = Field(le=1023)
    torch_device: str | None = Field(None, description="physical torch device, e.g. 'cpu' or 'cuda:0'",
                                     pattern=r"^[a-z]+(:[0-9]+)?$")
    link_bytes_per_sec: PositiveFinite | None = None
    compute_flops: PositiveFinite | None = None


class InputSpec(Strict):
    """One example input, declared by argument name. Exactly one kind:

    - a tensor: `shape` with `dtype`, `dist` (rand, randn, randint with `low`/`high`, zeros, ones);
    - a literal: `value` (an int, a string, None ...);
    - a list or tuple of inputs: `items` (each an input declaration) with `container`;
    - an object: `object: {_target_: pkg.Class, field: <input declaration>, ...}`, built with
      the declared fields as keyword arguments (a NamedTuple, a small data class).
    """

    shape: list[NonNegativeInt] | None = None
    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    dist: Literal[DISTRIBUTIONS] = "rand"  # type: ignore[valid-type]
    low: int = 0
    high: int | None = None
    value: Any = None
    items: list["InputSpec"] | None = None
    container: Literal["list", "tuple"] = "list"
    object: dict[str, Any] | None = None
    keyword: bool = False  # pass by name (for `**kwargs` forwards) instead of by position

    @model_validator(mode="after")
    def _one_kind(self) -> "InputSpec":
        kinds = [k for k in ("shape", "value", "items", "object") if k in self.model_fields_set]
        if len(kinds) != 1:
            raise PydanticCustomError(
                "input_kind",
                "an input needs exactly one of `shape` (a tensor), `value` (a literal), `items` (a list or tuple "
                "of inputs) or `object` ({_target_: Class, field: input}); got {kinds}",
                {"kinds": ", ".join(kinds) or "none"})
        if self.object is not None:
            if not isinstance(self.object.get("_target_"), str):
                raise PydanticCustomError("input_object", "`object` needs `_target_: package.Class`")
            self.object = {k: v if k == "_target_" else InputSpec.model_validate(v) for k, v in self.object.items()}
        if self.shape is not None:
            size = math.prod(self.shape) * _ITEM_BYTES[self.dtype]
            if size > INPUT_CEILING:
                raise PydanticCustomError("input_size", "needs {size} bytes, above the ceiling of 1 GiB per input",
                                          {"size": size, "field": "shape"})
        if self.dist == "randint":
            if self.high is None:
                raise PydanticCustomError("randint_high", "dist=randint needs `high` (exclusive upper bound)")
            if self.high <= self.low:
                raise PydanticCustomError("randint_bounds", "dist=randint needs high > low")
            lowest, highest = _INT_RANGE.get(self.dtype, (-2**63, 2**63 - 1))
            if self.low < lowest or self.high - 1 > highest:
                raise PydanticCustomError("randint_range", "dist=randint draws from [low, high), which must fit "
                                          "{dtype} ({lowest}..{highest})",
                                          {"dtype": self.dtype, "lowest": lowest, "highest": highest, "field": "high"})
        elif self.dtype not in ("float32", "float64", "float16", "bfloat16") and self.dist in ("rand", "randn"):
            raise PydanticCustomError(
                "dist_dtype", f"dist={self.dist} draws floats; for dtype={self.dtype} use randint, zeros or ones"
            )
        return self


class Requirements(Strict):
    """What a recipe or model needs from the machine; where something is missing the run is
    `skipped` with the reason instead of failing."""

    packages: list[str] = []   # importable module names, e.g. torchvision
    mkldnn: bool = False       # torch.backends.mkldnn enabled and available
    cuda: bool = False         # at least one CUDA device

class ModelSpec(Strict):
    """How to build the module (or function) under study and its example inputs.

    `name` defaults to the class (or function) that `module._target_` names, so the record names
    the model actually built even when the target is overridden (a name given must name that
    target: fxflow.plan checks it).
    """

    name: str | None = None
    module: dict[str, Any]
    inputs: dict[str, InputSpec]
    train: bool = False
    requires: Requirements = Requirements()

    @property
    def built_name(self) -> str:
        """The class or function name `module._target_` ends with."""
        return str(self.module.get("_target_", "")).rsplit(".", 1)[-1]

    @model_validator(mode="after")
    def _name_the_target(self) -> "ModelSpec":
        if self.name is None:
            self.name = self.built_name
        return self


class Tolerance(Strict):
    """Per-dtype tolerances of torch.testing.assert_close, capped so a changed computation cannot pass."""

    rtol: float = Field(ge=0, le=TOLERANCE_CEILING)
    atol: float = Field(ge=0, le=TOLERANCE_CEILING)


class EquivalenceSpec(Strict):
    """Equivalence checks: which stages, on how many fresh inputs, against which reference.

    `stages: []` compares nothing, so it needs `skip_reason`, which the record keeps.
    """

    stages: Literal["final", "all"] | list[str] = "final"
    fresh_inputs: NonNegativeInt = Field(2, le=FRESH_INPUTS_CEILING)
    reference: dict[str, Any] | None = None
    replay_rng: bool = True
    tolerances: dict[Literal[FLOAT_DTYPES], Tolerance] = {}  # type: ignore[valid-type]
    skip_reason: str | None = None

    @model_validator(mode="after")
    def _skip_is_explained(self) -> "EquivalenceSpec":
        reason = (self.skip_reason or "").strip()
        if self.stages == [] and not reason:
            raise PydanticCustomError(
                "skip_reason", "stages is [] (nothing would be compared): list the stages to check, or say why not "
                "in equivalence.skip_reason", {"field": "stages"})
        if self.stages != [] and self.skip_reason is not None:
            raise PydanticCustomError("skip_reason", "skip_reason is only read when stages is []",
                                      {"field": "skip_reason"})
        return self


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("regex", "is not a valid regular expression: {err}", {"err": str(exc)})
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class ExpectedError(Strict):
    """A step whose refusal is the point of the recipe."""

    stage: str
    type: str = "Exception"
    match: Regex = ""


class ExpectedRaise(Strict):
    """Calling a stage's module (and, with `reference`, the reference) on other inputs must raise.

    `inputs` override the declared inputs by name (same declaration form); `stage` defaults to
    the last stage."""

    stage: str | None = None
    inputs: dict[str, InputSpec] = {}
    type: str = "Exception"
    match: Regex = ""
    reference: bool = True


class ExpectSpec(Strict):
    """The recipe's pinned figures. They bind a run of the recipe as written; a run whose overrides
    change the scenario shows them beside its own figures, unless `strict` keeps them binding."""

    metrics: dict[str, Any] = {}
    error: ExpectedError | None = None
    raises: list[ExpectedRaise] = []
    strict: bool = False


class ReportSpec(Strict):
    """What the pipeline renders besides the record's contract files."""

    pictures: bool = True  # draw pictures (partition_graph.png) into the record
    picture_node_limit: NonNegativeInt = 300  # above this many nodes, draw partitions as boxes instead of nodes
    key_metrics: list[str] = []  # the figures a sweep summary shows per job; [] = the expected ones


class SweepSpec(Strict):
    """How a multirun (`-m`) behaves; ignored by single runs."""

    fail_fast: bool = False  # once a job fails or errors, jobs not yet started are skipped
    rerun_passed: bool = False  # re-run jobs whose record in the sweep folder already says passed


class RunConfig(Strict):
    """The whole composed config (Hydra's own `hydra:` node removed)."""

    recipe: str  # also part of the run directory's name, so it must be a safe name
    description: str = ""
    reproduces: list[str] = []  # the torch tests (test_fx_experimental.py::NAME) this recipe expresses
    requires: Requirements = Requirements()
    seed: int = Field(0, ge=0, le=SEED_CEILING)
    threads: int | None = Field(1, ge=1, le=256)  # torch's intra-op threads during the run; null: torch's default
    timeout_s: PositiveFinite = Field(600, le=TIMEOUT_CEILING)  # seconds a stage may run (fxflow.deadline)
    model: ModelSpec
    devices: dict[str, DeviceSpec] = {}
    tracer: dict[str, Any]
    transforms: dict[str, dict[str, Any]] = {}
    equivalence: EquivalenceSpec = EquivalenceSpec()
    report: ReportSpec = ReportSpec()
    expect: ExpectSpec = ExpectSpec()
    sweep: SweepSpec = SweepSpec()

    @field_validator("recipe")
    @classmethod
    def _safe_recipe_name(cls, value: str) -> str:
        if not SAFE_NAME.fullmatch(value):
            raise PydanticCustomError("safe_name", "is not a safe name for a folder: write " + SAFE_NAME_RULE)
        return value
