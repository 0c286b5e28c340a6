"""One source of truth: every component config file lists exactly its component's parameters
with the component's own defaults (`???` where the component requires a value), so a YAML
default can never drift from the code. A preset file extends its base through a defaults
list and writes only what it changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf
from pydantic import BaseModel

from fxflow.paths import conf_dir

GROUPS = ("transform", "latency", "tracer", "split_policy")
FILES = sorted(p for group in GROUPS for p in (conf_dir() / group).glob("*.yaml"))
MISSING = "???"


def load(path: Path) -> tuple[dict, dict]:
    """(the file's composed entry with its bases applied, what the file itself writes)."""
    own = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    bases = own.pop("defaults", [])
    entry: dict = {}
    for base in bases:
        entry.update(load(path.parent / f"{base}.yaml")[0])
    entry.update(own)
    return entry, own


def _default(value: object) -> object:
    return value.model_dump() if isinstance(value, BaseModel) else value


def test_there_are_component_files_to_check():
    assert {p.parent.name for p in FILES} == set(GROUPS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_yaml_keys_equal_the_component_fields(path: Path):
    entry, _ = load(path)
    cls = get_class(entry.pop("_target_"))
    assert issubclass(cls, BaseModel), f"{path.name}: {cls} is not a pydantic component"
    assert list(entry) == list(cls.model_fields), f"{path.name} keys differ from {cls.__name__}'s fields (order too)"


@pytest.mark.parametrize("path", [p for p in FILES if "defaults" not in OmegaConf.load(p)],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_base_files_hold_the_component_defaults(path: Path):
    entry, _ = load(path)
    cls = get_class(entry.pop("_target_"))
    for name, value in entry.items():
        field = cls.model_fields[name]
        if field.is_required():
            assert value == MISSING, f"{path.name}: {name} is required by {cls.__name__}; write ???"
        else:
            assert value == _default(field.get_default(call_default_factory=True)), f"{path.name}: {name}"


@pytest.mark.parametrize("path", [p for p in FILES if "defaults" in OmegaConf.load(p)],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_presets_write_only_what_they_change(path: Path):
    _, own = load(path)
    base: dict = {}
    for name in OmegaConf.load(path).defaults:
        base.update(load(path.parent / f"{name}.yaml")[0])
    assert own, f"{path.name} changes nothing; pick its base instead"
    for key, value in own.items():
        assert key in base, f"{path.name}: {key} is not a parameter of its base"
        assert value != base[key], f"{path.name}: {key} repeats its base's value"
