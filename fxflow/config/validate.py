"""Schema-level validation of a composed config: resolve interpolations, check every section
against the pydantic schema, and keep the sections that do validate so later cross-section
checks still run when one section is malformed."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import TypeAdapter, ValidationError

from fxflow.config.errors import ConfigError, ConfigProblem, problems_from_validation
from fxflow.config.names import BROKEN_RECIPE_KEY
from fxflow.config.schema import DeviceSpec, RunConfig


def resolve(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The composed config as plain data; an interpolation that does not resolve is a config problem."""
    if isinstance(cfg, dict):
        return cfg
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ConfigError([ConfigProblem(key, "does not resolve: " + str(getattr(exc, "msg", exc)).splitlines()[0], None,
                                   "a value, or an interpolation ${...} naming an existing key")]) from None


def validate_schema(cfg: dict[str, Any]) -> tuple[RunConfig | None, RunConfig, set[str], list[ConfigProblem]]:
    """(spec or None, the sections that validate, names of broken sections, problems)."""
    if BROKEN_RECIPE_KEY in cfg:
        raise ConfigError([ConfigProblem("recipe", "the recipe file cannot be used: " + str(cfg[BROKEN_RECIPE_KEY]), None,
                                   "a YAML mapping with `# @package _global_` like the shipped recipes")])
    try:
        spec = RunConfig.model_validate(cfg)
        return spec, spec, set(), []
    except ValidationError as exc:
        problems = problems_from_validation(exc, "", RunConfig)
    partial, broken = _valid_sections(cfg)
    return None, partial, broken, problems


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
    for key in ("expect", "equivalence", "model"):
        if key in cfg:
            try:
                values[key] = TypeAdapter(RunConfig.model_fields[key].annotation).validate_python(cfg[key])
            except ValidationError:
                broken.add(key)
    return RunConfig.model_construct(**values), broken
