"""Resolve and build `_target_` components (tracer, transforms, latency models) and check the
model and reference targets, all through the target policy (`fxflow.config.targets`).

Components are pydantic models, built by validating their parameters with the run's target
policy in pydantic's validation context (`run_policy(info)` gives it to a validator that
resolves a dotted path, so the policy is built once per run, never again per validator);
failures are turned into Problems that carry the full dotted config path. Nested components
(a latency model inside a partition transform) are built first, under their own path, and
handed in as ready objects, so a `_target_` mapping is built only where a field's type is a
component kind.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Iterator, Mapping

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from pydantic import ValidationError, ValidationInfo

from fxflow.config.errors import ConfigProblem, did_you_mean, join_path, problems_from_validation
from fxflow.config.targets import ModelTarget, NotImported, TargetPolicy, TargetRefused

# Where a config may hold a `{_target_: ...}` mapping; components may nest more below them.
MODEL_KEYS = ("model.module", "equivalence.reference")
# An example input built from a class: model.inputs.NAME(.items.N)*.object, also in expect.raises.
INPUT_OBJECT = re.compile(r"(model|expect\.raises\.\d+)\.inputs\.[^.]+(\.(items\.\d+|object\.[^.]+))*\.object")


POLICY_CONTEXT = "target_policy"  # the validation-context key under which build_component hands down the policy


def run_policy(info: ValidationInfo | None) -> TargetPolicy:
    """The run's target policy, as build_component hands it to validators; a component built
    directly in Python (outside a run) gets the environment's."""
    context = info.context if info is not None else None
    if isinstance(context, Mapping) and isinstance(context.get(POLICY_CONTEXT), TargetPolicy):
        return context[POLICY_CONTEXT]
    return TargetPolicy.from_environment()


def is_component(value: Any) -> bool:
    return isinstance(value, Mapping) and "_target_" in value


def known_subclasses(base: type) -> dict[str, type]:
    """Dotted import path -> class for every concrete subclass of `base` loaded so far."""
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not inspect.isabstract(cls) and not cls.__name__.startswith("_"):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return dict(sorted(found.items()))


def target_paths(value: Any, path: str = "") -> Iterator[str]:
    """The dotted path of every mapping that holds a `_target_`, at any depth (lists included)."""
    if isinstance(value, Mapping):
        if "_target_" in value:
            yield path
        for key, item in value.items():
            yield from target_paths(item, join_path(path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from target_paths(item, join_path(path, index))


def misplaced_targets(cfg: Mapping[str, Any], component_roots: set[str]) -> list[ConfigProblem]:
    """A `_target_` mapping anywhere but a model, a reference or a component root is refused
    before anything is imported (component roots check their own fields when built)."""
    problems = []
    for path in target_paths(cfg):
        if path in MODEL_KEYS or path in component_roots:
            continue
        if any(path.startswith(root + ".") for root in (*component_roots, *MODEL_KEYS)):
            continue  # judged where that section is built, against the field's type
        if INPUT_OBJECT.fullmatch(path):
            continue  # an example input built from a class: judged by check_input_objects
        problems.append(_misplaced(path))
    return problems


def check_input_objects(cfg: Mapping[str, Any], policy: TargetPolicy) -> list[ConfigProblem]:
    """Every `object: {_target_: Class}` input names a class the policy accepts (checked before import)."""
    problems = []
    for path in target_paths(cfg):
        if not INPUT_OBJECT.fullmatch(path):
            continue
        section: Any = cfg
        for part in path.split("."):
            section = section[int(part)] if isinstance(section, list) else section[part]
        try:
            policy.data_class(section.get("_target_"))
        except NotImported:
            continue
        except TargetRefused as exc:
            problems.append(ConfigProblem(join_path(path, "_target_"), exc.message, section.get("_target_"), exc.accepted))
    return problems


def build_component(section: Any, path: str, problems: list[ConfigProblem], base: type,
                    policy: TargetPolicy) -> Any:
    """Build one component (and its nested ones); on failure record Problems and return None."""
    if not isinstance(section, Mapping):
        problems.append(ConfigProblem(path, f"must be a mapping with a _target_ naming a {base.__name__}", section))
        return None
    known = list(known_subclasses(base))
    target = section.get("_target_")
    try:
        cls = policy.component(target, base)
    except NotImported:  # fxflow show / validate: a trusted package's class is checked by name only
        return None
    except TargetRefused as exc:
        hint = did_you_mean(target, known) if isinstance(target, str) and "cannot be imported" in exc.message else ""
        problems.append(ConfigProblem(join_path(path, "_target_"), exc.message + hint, target,
                                ", ".join(known) if known else exc.accepted))
        return None
    nested: dict[str, Any] = {}
    fine = True
    broken: list[str] = []
    for key, value in section.items():
        if key == "_target_":
            continue
        if isinstance(key, str) and key.startswith("_"):
            problems.append(ConfigProblem(join_path(path, key), "is not a parameter: keys starting with '_' are Hydra's "
                                    "instantiate options, which a config may not set here"))
            fine = False
            continue
        field = getattr(cls, "model_fields", {}).get(key)
        kind = _component_base(field.annotation) if field else None
        if is_component(value) and kind is not None:
            built = build_component(value, join_path(path, key), problems, kind, policy)
            if built is None:
                broken.append(key)
            else:
                nested[key] = built
            continue
        stray = list(target_paths(value, join_path(path, key)))
        if stray:
            problems.extend(_misplaced(p) for p in stray)
            fine = False
    if broken and fine and hasattr(cls, "model_validate"):
        # still check this component's own parameters, so every problem shows at once; the broken
        # nested ones are left out, as they are reported already
        rest = {k: v for k, v in section.items() if not str(k).startswith("_") and k not in broken}
        try:
            cls.model_validate({**rest, **nested})
        except ValidationError as exc:
            reported = {join_path(path, key) for key in broken}
            problems.extend(p for p in problems_from_validation(exc, path, cls) if p.path not in reported)
    if not fine or broken:
        return None
    params = {k: v for k, v in section.items() if k not in nested}
    if hasattr(cls, "model_validate"):
        try:
            return cls.model_validate({**{k: v for k, v in params.items() if k != "_target_"}, **nested},
                                      context={POLICY_CONTEXT: policy})
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, path, cls))
        except Exception as exc:  # noqa: BLE001 - a component's own code refusing its parameters
            problems.append(ConfigProblem(path, f"cannot be built: {type(exc).__name__}: {exc}"))
        return None
    try:
        return instantiate(params, _convert_="all", _recursive_=False, **nested)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            problems.extend(problems_from_validation(cause, path, cls))
        else:
            problems.append(ConfigProblem(path, f"cannot be built: {cause or exc}"))
        return None


def check_model_target(section: Any, path: str, problems: list[ConfigProblem], policy: TargetPolicy) -> ModelTarget | None:
    """Check a model/reference `_target_` and that it accepts the given arguments, without calling it."""
    if not isinstance(section, Mapping):
        problems.append(ConfigProblem(path, "must be a mapping with a _target_ naming the model", section))
        return None
    target = section.get("_target_")
    try:
        model = policy.model(target)
    except NotImported:  # fxflow show / validate: a trusted package's model is checked by name only
        return None
    except TargetRefused as exc:
        problems.append(ConfigProblem(join_path(path, "_target_"), exc.message, target, exc.accepted))
        return None
    params: dict[str, Any] = {}
    for key, value in section.items():
        if key == "_target_":
            continue
        if not isinstance(key, str) or key.startswith("_"):
            problems.append(ConfigProblem(join_path(path, key), "is not an argument: keys starting with '_' are Hydra's "
                                    "instantiate options; write the model's arguments by name"))
            return None
        stray = list(target_paths(value, join_path(path, key)))
        if stray:
            problems.extend(_misplaced(p) for p in stray)
            return None
        params[key] = value
    if model.kind == "function":
        if params:
            problems.append(ConfigProblem(path, f"arguments given to {target}, a function that is traced as written",
                                    params, "no arguments, or register a factory with @model_factory"))
            return None
        return model
    try:
        signature = inspect.signature(model.obj)
    except (TypeError, ValueError):
        return model
    if isinstance(model.obj, type) and model.obj.__init__ is torch.nn.Module.__init__:
        signature = inspect.Signature([])  # nn.Module's (*args, **kwargs) takes no config arguments
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = ", ".join(n for n in signature.parameters if n != "self") or "no arguments"
        problems.append(ConfigProblem(path, f"arguments do not fit {target}: {exc}", params, accepted))
        return None
    return model


def _misplaced(path: str) -> ConfigProblem:
    return ConfigProblem(path, "holds a `_target_` mapping, which is not accepted here: only model.module, "
                   "equivalence.reference, tracer, transforms.NAME and their component fields are built from "
                   "`_target_`", None, "a plain value")


def _component_base(annotation: Any) -> type | None:
    """The component class a field accepts (`LatencyModel | None` -> LatencyModel); None for plain fields."""
    for arg in getattr(annotation, "__args__", (annotation,)):
        if isinstance(arg, type) and arg is not type(None) and _is_component_kind(arg):
            return arg
    return None


def _is_component_kind(cls: type) -> bool:
    """Component kinds are abstract pydantic bases (Transform, Tracer, LatencyModel)."""
    return inspect.isabstract(cls) and hasattr(cls, "model_fields")
