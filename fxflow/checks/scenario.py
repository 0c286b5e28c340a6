"""Which command-line overrides change what a recipe's pinned figures describe.

A recipe run as written checks its pinned figures (`expect:`): that is how the recipe proves
its torch test. An override that changes the model, devices, tracer, transforms, seed or
anything else the figures depend on turns the run into an exploration: its figures are shown
beside the recipe's, and equivalence decides (unless `expect.strict=true`). Overrides that only
change what is checked or written cannot change a figure and keep the run as written:
"""

from __future__ import annotations

from typing import Iterable

from hydra.core.override_parser.overrides_parser import OverridesParser

# Sections whose values no recorded figure depends on (the recipe's choice itself included).
SCENARIO_NEUTRAL = ("recipe", "description", "reproduces", "expect", "report", "equivalence", "sweep", "hydra",
                    "threads")


def scenario_changes(overrides: Iterable[str]) -> list[str]:
    """The overrides (as typed) that change the recipe's scenario, in order."""
    changes = []
    parser = OverridesParser.create()
    for text in overrides:
        try:
            override = parser.parse_override(text)
            key = override.key_or_group
        except Exception:  # noqa: BLE001 - an override Hydra accepted but we cannot read: count it
            changes.append(text)
            continue
        if key.split("/")[0].split(".")[0] not in SCENARIO_NEUTRAL:
            changes.append(text)
    return changes
