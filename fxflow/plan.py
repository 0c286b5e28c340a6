"""Planning: turn a composed config into a RunPlan (typed spec plus built components) before
anything heavy runs, reporting every problem at once.

`fxflow.config` knows only the schema and how to build a `_target_`; this module knows the
component kinds (tracers, transforms) and the checks that span sections: transform order,
devices for partitioning transforms, expectations naming real stages, inputs matching forward.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Iterable

import fxflow.transforms
from fxflow.config.components import (build_component, check_input_objects, check_model_target, known_subclasses,
                                      misplaced_targets)
from fxflow.config.errors import ConfigError, ConfigProblem, did_you_mean
from fxflow.config.names import safe_name_problem
from fxflow.config.renamed import renamed
from fxflow.config.schema import RunConfig
from fxflow.config.targets import ModelTarget, NotImported, TargetPolicy, not_imported
from fxflow.config.validate import validate_schema
from fxflow.requirements import RequirementMissing, unmet
from fxflow.stages import GRAPH, GraphProperty
from fxflow.steps import RunStep
from fxflow.tracers import Tracer
from fxflow.transforms.base import Transform

BUILTIN_STAGES = ("build", "trace")


@dataclass
class RunPlan:
    """A validated run: the typed config plus the built (cheap) components.

    `model_factory(**args)` builds the model (`reference_factory` the reference): each is a
    ModelTarget the target policy accepted; its `obj` is the class or function named.
    """

    spec: RunConfig
    tracer: Tracer
    transforms: dict[str, Transform]
    model_factory: ModelTarget
    reference_factory: ModelTarget | None
    policy: TargetPolicy  # the run's target policy, built once: what a config's dotted paths may name

    @property
    def stages(self) -> list[str]:
        """The steps whose product is a module: the trace, then each transform."""
        return ["trace", *self.transforms]

    @property
    def comparable_stages(self) -> list[str]:
        """Stages equivalence applies to: all but probes, which inspect without changing the module."""
        return ["trace", *(name for name, t in self.transforms.items() if not t.probe)]

    def step(self, stage: str) -> RunStep:
        """The step that made `stage`'s module, worded by the tracer or the transform behind it."""
        return self.tracer.step() if stage == "trace" else self.transforms[stage].step(stage)


def load_transforms() -> None:
    """Import every module of `fxflow.transforms`, so error messages can list every transform."""
    for info in pkgutil.iter_modules(fxflow.transforms.__path__, "fxflow.transforms."):
        importlib.import_module(info.name)


def plan_run(cfg: dict[str, Any], files: Iterable[str] = (), policy: TargetPolicy | None = None) -> RunPlan:
    """Check the whole config; raise ConfigError listing every problem with its dotted path.

    Every `_target_` goes through the target policy (trusted packages come from the
    environment, never from `cfg`) before anything it names is imported.
    """
    load_transforms()
    policy = policy or TargetPolicy.from_environment()
    spec, partial, broken, problems = validate_schema(cfg)
    raw_transforms = cfg.get("transforms") or {}
    names_written = list(raw_transforms) if isinstance(raw_transforms, dict) else []
    for name in names_written:
        unsafe = safe_name_problem(name)
        if unsafe:
            problems.append(ConfigProblem(f"transforms.{name}", "the transform name " + unsafe, name))
    roots = {"tracer", *(f"transforms.{name}" for name in names_written)}
    reported = [p.path for p in problems]
    problems.extend(p for p in misplaced_targets(cfg, roots)  # one message per key: a schema problem says enough
                    if not any(p.path == r or p.path.startswith(r + ".") or r.startswith(p.path + ".") for r in reported))
    problems.extend(check_input_objects(cfg, policy))

    tracer = build_component(cfg["tracer"], "tracer", problems, Tracer, policy) if "tracer" in cfg else None
    transforms: dict[str, Transform] = {}
    if isinstance(raw_transforms, dict):
        for name, section in raw_transforms.items():
            built = build_component(section or {}, f"transforms.{name}", problems, Transform, policy)
            if built is not None:
                transforms[name] = built

    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    model_factory = None
    # A model from a package the machine lacks cannot be imported to check it: the run is skipped instead.
    missing = unmet(spec.requires) + unmet(spec.model.requires) if spec is not None else []
    if "module" in model and not missing:
        model_factory = check_model_target(model["module"], "model.module", problems, policy)
        if model_factory is not None and isinstance(model.get("inputs"), dict):
            problems.extend(_input_names(model_factory, model["inputs"]))
        problems.extend(_model_name(spec, model_factory))
    equivalence = cfg.get("equivalence") if isinstance(cfg.get("equivalence"), dict) else {}
    reference = equivalence.get("reference")
    reference_factory = None
    if reference is not None:
        reference_factory = check_model_target(reference, "equivalence.reference", problems, policy)

    if isinstance(raw_transforms, dict) and len(transforms) == len(raw_transforms):
        problems.extend(_transform_order(transforms))  # a broken transform would make its followers look misordered
    problems.extend(_cross_checks(partial, transforms, names_written, broken))

    unimported = not_imported()
    if unimported and not problems:  # fxflow show / validate: trusted code is checked by name, never run
        raise NotImported("checked by name only, not imported (trusted packages): " + ", ".join(unimported))
    if problems or spec is None or tracer is None or (model_factory is None and not missing):
        raise ConfigError(problems, recipe=str(cfg.get("recipe", "")), files=files)
    if missing:
        raise RequirementMissing("; ".join(missing))
    return RunPlan(spec, tracer, transforms, model_factory, reference_factory, policy)


def _model_name(spec: RunConfig | None, model: ModelTarget | None) -> list[ConfigProblem]:
    """A model config's `name` must name the class or function it builds, so the record never names
    another model; a registered factory builds many models, and its `name` says which."""
    if spec is None or model is None or not spec.model.name or model.kind == "factory":
        return []
    if _names_alike(spec.model.name, spec.model.built_name):
        return []
    return [ConfigProblem("model.name", f"does not name the model built ({spec.model.module.get('_target_')})",
                    spec.model.name, "leave `name` out (the record names the model by its class) "
                    f"or write {spec.model.built_name}")]


def _input_names(model: ModelTarget, inputs: dict[str, Any]) -> list[ConfigProblem]:
    """Declared inputs must match the parameters of forward (or of the function under study)."""
    if model.kind == "factory":
        return []  # what a factory returns is only known once built
    try:
        forward = model.obj.forward if model.kind == "module" else model.obj
        params = [p for p in inspect.signature(forward).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params) or any(p.kind is p.VAR_POSITIONAL for p in params):
        return []
    names = [p.name for p in params]
    problems = []
    for name in inputs:
        if name not in names:
            problems.append(ConfigProblem(f"model.inputs.{name}", "is not an argument of the model" + did_you_mean(name, names),
                                    None, ", ".join(names)))
    for p in params:
        if p.default is p.empty and p.name not in inputs:
            problems.append(ConfigProblem(f"model.inputs.{p.name}", "is required by the model but not declared", None,
                                    "shape/dtype/dist or value"))
    return problems


def _transform_order(transforms: dict[str, Transform]) -> list[ConfigProblem]:
    """Each transform must take the kind of module the stage before it gives (the trace gives a
    GraphModule), and its `requires` must be provided by an earlier one (and not invalidated since)."""
    problems = []
    have: dict[GraphProperty, str] = {}
    kind, source = GRAPH, "the trace (tracer)"
    for name, transform in transforms.items():
        if not kind.is_a(transform.takes):
            problems.append(ConfigProblem(
                f"transforms.{name}", f"{type(transform).__name__} takes {transform.takes.words}, but {source} before "
                f"it gives {kind.words}: the stages do not chain", None,
                f"a step that takes {kind.words} after {source}, or transforms.{name} before it"))
        kind = transform.gives_for(kind if kind.is_a(transform.takes) else transform.takes)
        source = f"transforms.{name} ({type(transform).__name__})"
        for need in transform.requires:
            if need not in have:
                givers = sorted({f"{t.__module__}.{t.__name__}" for t in _providers(need)})
                problems.append(ConfigProblem(
                    f"transforms.{name}", f"needs '{need.value}' but no earlier transform provides it (misordered or missing step)",
                    None, "put one of " + ", ".join(givers) + " before it" if givers else ""))
        for gone in transform.invalidates:
            have.pop(gone, None)
        for give in transform.provides:
            have[give] = name
    return problems


def _providers(need: GraphProperty) -> list[type]:
    return [cls for cls in known_subclasses(Transform).values() if need in cls.provides]


def _cross_checks(spec: RunConfig, transforms: dict[str, Transform], names_written: list[str],
                  broken: set[str] = frozenset()) -> list[ConfigProblem]:
    """Checks across sections; stage names come from the config as written, so one broken
    transform does not also make every expectation about it look wrong."""
    problems = []
    stages = [*BUILTIN_STAGES, *names_written]
    users = [n for n, t in transforms.items() if t.uses_devices]
    if users and not spec.devices and "devices" not in broken:
        problems.append(ConfigProblem("devices", f"is empty but transforms.{users[0]} partitions over devices", None,
                                "devices=one_gpu|two_gpu|three_gpu or a mapping"))
    names: dict[str, str] = {}
    for key, device in spec.devices.items():
        name = device.name or key
        if name in names:
            problems.append(ConfigProblem(f"devices.{key}.name", f"duplicates the name of devices.{names[name]}", name,
                                    "unique device names"))
        names[name] = key
    ids: dict[int, str] = {}
    for key, device in spec.devices.items():
        lid = getattr(device, "logical_id", None)
        if lid is None:
            continue
        if lid in ids:
            problems.append(ConfigProblem(
                f"devices.{key}.logical_id", f"duplicates the logical_id of devices.{ids[lid]}: the partitioner would "
                "fill one device as if each entry had its own memory", lid, "a distinct logical_id per device"))
        ids[lid] = key
    for key in spec.expect.metrics:
        if key not in stages:
            problems.append(ConfigProblem(f"expect.metrics.{key}", "names no stage of this recipe" + did_you_mean(key, stages),
                                    None, ", ".join(stages)))
    if spec.expect.error and spec.expect.error.stage not in names_written:
        error = spec.expect.error
        problems.append(ConfigProblem("expect.error.stage", "names no transform of this recipe (only a transform's refusal "
                                "can be expected)" + did_you_mean(error.stage, names_written), error.stage,
                                ", ".join(names_written) or "no transforms"))
    probes = [n for n, t in transforms.items() if t.probe]
    comparable = [s for s in stages[1:] if s not in probes]
    if isinstance(spec.equivalence.stages, list):
        for stage in spec.equivalence.stages:
            if stage in probes:
                problems.append(ConfigProblem("equivalence.stages", f"names probe '{stage}', which inspects without changing "
                                        "the module: equivalence does not apply to it", stage, ", ".join(comparable)))
            elif stage not in stages[1:]:
                problems.append(ConfigProblem("equivalence.stages", "names no stage of this recipe" + did_you_mean(stage, stages),
                                        stage, ", ".join(comparable)))
    for index, raise_ in enumerate(spec.expect.raises):
        if raise_.stage is not None and raise_.stage not in stages[1:]:
            problems.append(ConfigProblem(f"expect.raises.{index}.stage", "names no stage of this recipe"
                                    + did_you_mean(raise_.stage, stages), raise_.stage, ", ".join(stages[1:])))
    return problems


def _names_alike(a: str, b: str) -> bool:
    """`sparse_nn`, `SparseNN` and `sparse-nn` name the same thing."""
    plain = lambda name: "".join(ch for ch in name.lower() if ch.isalnum())  # noqa: E731
    return plain(a) == plain(b)


# `Plan` was renamed `RunPlan` (fxflow.distributed's Plan is the execution plan); the old
# name works for one release.
__getattr__ = renamed(__name__, Plan=RunPlan)
