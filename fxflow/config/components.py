"""Resolve and build `_target_` components (tracer, transforms, latency models) from config.

Components are pydantic models, so building one with Hydra's `instantiate` also validates
its parameters; failures are turned into Problems that carry the full dotted config path.
Nested components (a latency model inside a partition transform) are built first, under
their own path, and handed to `instantiate` as ready objects.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from pydantic import ValidationError

from fxflow.config.errors import Problem, did_you_mean, join_path, problems_from_validation


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


def resolve_target(section: Mapping[str, Any], path: str, problems: list[Problem], base: type | None = None) -> Any:
    """Import the object named by `section._target_`; record a Problem and return None if that fails."""
    key = join_path(path, "_target_")
    known = list(known_subclasses(base)) if base else []
    accepted = ", ".join(known) if known else "an importable dotted path (package.module.Name)"
    target = section.get("_target_") if isinstance(section, Mapping) else None
    if not isinstance(target, str) or not target:
        problems.append(Problem(key, "is required: name the component to build", target, accepted))
        return None
    try:
        obj = get_object(target)
    except Exception:
        problems.append(Problem(key, "cannot be imported" + did_you_mean(target, known), target, accepted))
        return None
    if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
        problems.append(Problem(key, f"is not a {base.__name__}", target, accepted))
        return None
    return obj


def build_component(section: Mapping[str, Any], path: str, problems: list[Problem], base: type) -> Any:
    """Build one component (and its nested ones); on failure record Problems and return None."""
    cls = resolve_target(section, path, problems, base)
    if cls is None:
        return None
    nested: dict[str, Any] = {}
    broken: list[str] = []
    for key, value in section.items():
        if is_component(value):
            field = getattr(cls, "model_fields", {}).get(key)
            nested_base = _component_base(field.annotation) if field else object
            built = build_component(value, join_path(path, key), problems, nested_base)
            if built is None:
                broken.append(key)
            else:
                nested[key] = built
    if broken:  # still check this component's own parameters, so every problem shows at once
        rest = {k: v for k, v in section.items() if not k.startswith("_") and k not in broken}
        if hasattr(cls, "model_validate"):
            try:
                cls.model_validate({**rest, **nested})
            except ValidationError as exc:  # the broken nested ones are left out: they are reported already
                reported = {join_path(path, key) for key in broken}
                problems.extend(p for p in problems_from_validation(exc, path, cls) if p.path not in reported)
        return None
    try:
        return instantiate(dict(section), _convert_="all", **nested)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            problems.extend(problems_from_validation(cause, path, cls))
        else:
            problems.append(Problem(path, f"cannot be built: {cause or exc}"))
        return None


def check_callable_target(section: Mapping[str, Any], path: str, problems: list[Problem]) -> Callable | None:
    """Check that a model/reference `_target_` imports and accepts the given arguments, without calling it.

    With `_partial_: true` (Hydra's word for "do not call") the target is the callable under
    study itself, e.g. a plain function to trace, and takes no config arguments."""
    obj = resolve_target(section, path, problems)
    if obj is None:
        return None
    if not callable(obj):
        problems.append(Problem(join_path(path, "_target_"), "is not callable", section["_target_"]))
        return None
    params = {k: v for k, v in section.items() if not k.startswith("_")}
    if section.get("_partial_"):  # the callable itself is under study (a function to trace); nothing is called
        if isinstance(obj, type):
            problems.append(Problem(join_path(path, "_partial_"), "names a function to trace; a class is built by "
                                    "calling it", True, "drop _partial_ for a class"))
            return None
        if params or section.get("_args_"):
            problems.append(Problem(path, "takes no arguments with `_partial_: true`: the callable itself is used, "
                                    "and a function's parameters are its inputs", params,
                                    "declare them under model.inputs; fix one with tracer.concrete_args"))
            return None
        return obj
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj
    if isinstance(obj, type) and obj.__init__ is torch.nn.Module.__init__:
        signature = inspect.Signature([])  # nn.Module's (*args, **kwargs) takes no config arguments
    try:
        signature.bind(*section.get("_args_", ()), **params)
    except TypeError as exc:
        accepted = ", ".join(n for n in signature.parameters if n != "self") or "no arguments"
        problems.append(Problem(path, f"arguments do not fit {section['_target_']}: {exc}", params, accepted))
        return None
    return obj


def _component_base(annotation: Any) -> type:
    """The component class a field accepts (`LatencyModel | None` -> LatencyModel)."""
    for arg in getattr(annotation, "__args__", (annotation,)):
        if isinstance(arg, type) and arg is not type(None):
            return arg
    return object
