"""Validate a composed config into a Plan before anything heavy runs; report every problem at once."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import TypeAdapter, ValidationError

from fxflow.config.components import build_component, check_callable_target, known_subclasses
from fxflow.config.errors import ConfigError, Problem, did_you_mean, problems_from_validation
from fxflow.config.schema import DeviceSpec, RunConfig
from fxflow.tracers import Tracer
from fxflow.transforms import Transform

BUILTIN_STAGES = ("build", "trace")


@dataclass
class Plan:
    """A validated run: the typed config plus the built (cheap) components."""

    spec: RunConfig
    tracer: Tracer
    transforms: dict[str, Transform]
    model_factory: Callable[..., Any]
    reference_factory: Callable[..., Any] | None

    @property
    def stages(self) -> list[str]:
        return ["trace", *self.transforms]


def resolve(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The composed config as plain data; an interpolation that does not resolve is a config problem."""
    if isinstance(cfg, dict):
        return cfg
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ConfigError([Problem(key, "does not resolve: " + str(getattr(exc, "msg", exc)).splitlines()[0], None,
                                   "a value, or an interpolation ${...} naming an existing key")]) from None


def validate(cfg: dict[str, Any], files: Iterable[str] = ()) -> Plan:
    """Check the whole config; raise ConfigError listing every problem with its dotted path."""
    problems: list[Problem] = []
    spec = None
    try:
        spec = RunConfig.model_validate(cfg)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, "", RunConfig))

    tracer = _section(cfg, "tracer", problems, lambda s: build_component(s, "tracer", problems, Tracer))
    transforms: dict[str, Transform] = {}
    raw_transforms = cfg.get("transforms") or {}
    if isinstance(raw_transforms, dict):
        for name, section in raw_transforms.items():
            built = build_component(section or {}, f"transforms.{name}", problems, Transform)
            if built is not None:
                transforms[name] = built

    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    model_factory = None
    if isinstance(model.get("module"), dict):
        model_factory = check_callable_target(model["module"], "model.module", problems)
        if model_factory is not None and isinstance(model.get("inputs"), dict):
            problems.extend(_input_names(model_factory, model["inputs"]))
    reference = (cfg.get("check") or {}).get("reference") if isinstance(cfg.get("check"), dict) else None
    reference_factory = check_callable_target(reference, "check.reference", problems) if reference else None

    if isinstance(raw_transforms, dict) and len(transforms) == len(raw_transforms):
        problems.extend(_transform_order(transforms))  # a broken transform would make its followers look misordered
    partial, broken = (spec, set()) if spec is not None else _valid_sections(cfg)
    names_written = list(raw_transforms) if isinstance(raw_transforms, dict) else []
    problems.extend(_cross_checks(partial, transforms, names_written, broken))

    if problems or spec is None or tracer is None or model_factory is None:
        raise ConfigError(problems, recipe=str(cfg.get("recipe", "")), files=files)
    return Plan(spec, tracer, transforms, model_factory, reference_factory)


def _valid_sections(cfg: dict[str, Any]) -> tuple[RunConfig, set[str]]:
    """The sections that do validate (and the names of those that do not), so one schema
    problem does not hide the cross-section ones."""
    values: dict[str, Any] = {}
    broken: set[str] = set()
    devices = cfg.get("devices")
    if devices is not None and not isinstance(devices, dict):
        broken.add("devices")
    elif isinstance(devices, dict):
        # Per device, so names still count for the duplicate check when a budget is malformed.
        values["devices"] = {}
        for key, raw in devices.items():
            try:
                values["devices"][key] = DeviceSpec.model_validate(raw)
            except ValidationError:
                name = raw.get("name") if isinstance(raw, dict) else None
                values["devices"][key] = DeviceSpec.model_construct(name=name)
    for key in ("expect", "check"):
        if key in cfg:
            try:
                values[key] = TypeAdapter(RunConfig.model_fields[key].annotation).validate_python(cfg[key])
            except ValidationError:
                broken.add(key)
    return RunConfig.model_construct(**values), broken


def _section(cfg: dict[str, Any], key: str, problems: list[Problem], build: Callable[[dict], Any]) -> Any:
    section = cfg.get(key)
    if not isinstance(section, dict):
        return None  # RunConfig already reported a missing or mistyped section
    return build(section)


def _input_names(factory: Callable[..., Any], inputs: dict[str, Any]) -> list[Problem]:
    """Declared inputs must match the parameters of forward (or of the function)."""
    if not (isinstance(factory, type) and issubclass(factory, torch.nn.Module)):
        return []  # a factory function: what it returns is only known once built
    try:
        params = [p for p in inspect.signature(factory.forward).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params) or any(p.kind is p.VAR_POSITIONAL for p in params):
        return []
    names = [p.name for p in params]
    problems = []
    for name in inputs:
        if name not in names:
            problems.append(
                Problem(f"model.inputs.{name}", "is not an argument of the model" + did_you_mean(name, names), None, ", ".join(names))
            )
    for p in params:
        if p.default is p.empty and p.name not in inputs:
            problems.append(Problem(f"model.inputs.{p.name}", "is required by the model but not declared", None, "shape/dtype/dist or value"))
    return problems


def _transform_order(transforms: dict[str, Transform]) -> list[Problem]:
    """Each transform's `requires` must be provided by an earlier one (and not invalidated since)."""
    problems = []
    have: dict[str, str] = {}
    for name, transform in transforms.items():
        for need in transform.requires:
            if need not in have:
                givers = sorted({f"{t.__module__}.{t.__name__}" for t in _providers(need)})
                problems.append(
                    Problem(
                        f"transforms.{name}",
                        f"needs '{need}' but no earlier transform provides it (misordered or missing step)",
                        None,
                        "put one of " + ", ".join(givers) + " before it" if givers else "",
                    )
                )
        for gone in transform.invalidates:
            have.pop(gone, None)
        for give in transform.provides:
            have[give] = name
    return problems


def _providers(need: str) -> list[type]:
    return [cls for cls in known_subclasses(Transform).values() if need in cls.provides]


def _cross_checks(
    spec: RunConfig, transforms: dict[str, Transform], names_written: list[str], broken: set[str] = frozenset()
) -> list[Problem]:
    """Checks across sections; stage names come from the config as written, so one broken
    transform does not also make every expectation about it look wrong."""
    problems = []
    stages = [*BUILTIN_STAGES, *names_written]
    users = [n for n, t in transforms.items() if getattr(t, "uses_devices", False)]
    if users and not spec.devices and "devices" not in broken:
        problems.append(Problem("devices", f"is empty but transforms.{users[0]} partitions over devices", None, "devices=one_gpu|two_gpu|three_gpu or a mapping"))
    names: dict[str, str] = {}
    for key, device in spec.devices.items():
        name = device.name or key
        if name in names:
            problems.append(Problem(f"devices.{key}.name", f"duplicates the name of devices.{names[name]}", name, "unique device names"))
        names[name] = key
    for key in spec.expect.metrics:
        if key not in stages:
            problems.append(Problem(f"expect.metrics.{key}", "names no stage of this recipe" + did_you_mean(key, stages), None, ", ".join(stages)))
    if spec.expect.error and spec.expect.error.stage not in names_written:
        error = spec.expect.error
        problems.append(Problem("expect.error.stage", "names no transform of this recipe (only a transform's refusal can be expected)"
                                + did_you_mean(error.stage, names_written), error.stage, ", ".join(names_written) or "no transforms"))
    if isinstance(spec.check.stages, list):
        for stage in spec.check.stages:
            if stage not in stages[1:]:
                problems.append(Problem("check.stages", "names no stage of this recipe" + did_you_mean(stage, stages), stage, ", ".join(stages[1:])))
    return problems
