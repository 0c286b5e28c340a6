"""One home per default: conf/config.yaml (the primary config) and the default equivalence option
write exactly the run schema's fields with the schema's own defaults (`???` where the schema
requires a value), as component files do for their classes (test_component_configs.py)."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fxflow.config.schema import EquivalenceSpec, RunConfig
from fxflow.paths import conf_dir

MISSING = "???"
# Sections chosen from a config group by the primary config's defaults list, not written in it.
GROUP_SECTIONS = {"model", "devices", "tracer", "equivalence"}


def written(path) -> dict[str, Any]:
    own = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    own.pop("defaults", None)
    own.pop("hydra", None)
    return own


def mismatches(fields: dict[str, FieldInfo], values: dict[str, Any], where: str = "") -> list[str]:
    """Where `values` differ from the schema `fields` and their defaults, nested models included."""
    found = []
    if set(values) != set(fields):
        found.append(f"{where or '<top>'}: keys {sorted(values)} differ from the schema's {sorted(fields)}")
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            continue
        if field.is_required():
            if value != MISSING:
                found.append(f"{where}{name}: required by the schema; write ???")
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel) and isinstance(value, dict):
            found += mismatches(type(default).model_fields, value, f"{where}{name}.")
        elif (default.model_dump() if isinstance(default, BaseModel) else default) != value:
            found.append(f"{where}{name}: {value!r} here, {default!r} in the schema")
    return found


PRIMARY_FIELDS = {name: field for name, field in RunConfig.model_fields.items() if name not in GROUP_SECTIONS}


def test_the_primary_config_writes_the_run_schemas_defaults():
    assert mismatches(PRIMARY_FIELDS, written(conf_dir() / "config.yaml")) == []


def test_the_default_equivalence_option_writes_the_schemas_defaults():
    assert mismatches(EquivalenceSpec.model_fields, written(conf_dir() / "equivalence" / "default.yaml"),
                      "equivalence.") == []


@pytest.mark.parametrize("value,expected", [({"seed": 1}, "seed"), ({"report": {"pictures": False}}, "report.pictures")])
def test_a_drifted_default_is_named(value, expected):
    values = {**written(conf_dir() / "config.yaml")}
    for key, inner in value.items():
        values[key] = {**values[key], **inner} if isinstance(inner, dict) else inner
    assert any(problem.startswith(expected) for problem in mismatches(PRIMARY_FIELDS, values))
