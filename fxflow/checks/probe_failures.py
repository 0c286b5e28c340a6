"""A catalogue probe's own failed cases decide the run, whatever the scenario.

A catalogue probe (`normalize_opinfo_catalogue`, `normalize_modules_catalogue`) runs torch's own
case lists; each case it runs is a test in itself. Its `failed` count is therefore not a figure a
recipe may pin or leave out: a run with a failed case is `failed`, also in an exploration (an
override that widens the catalogue to the whole database is exactly where the cases must bind).
A transform opts in by naming the fact that counts its failed cases:

    class NormalizeOpInfoCatalogue(Transform):
        failures_fact: ClassVar[str] = "failed"   # with `failures`, the cases named
"""

from __future__ import annotations

from typing import Any, Mapping

from fxflow.checks.result import Check


def check_probe_failures(transforms: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Check]:
    """One binding check per stage whose transform declares `failures_fact` and recorded it."""
    checks = []
    for name, transform in transforms.items():
        field = getattr(transform, "failures_fact", None)
        stage_facts = facts.get(name)
        if field is None or not isinstance(stage_facts, dict) or field not in stage_facts:
            continue
        failed = stage_facts[field]
        total = stage_facts.get("total")
        named = stage_facts.get("failures") or []
        if failed == 0:
            detail = f"{name}: none of the {total} catalogue cases failed"
        else:
            shown = "; ".join(named[:3]) + (f"; ... ({len(named)} named in {name}.failures)" if len(named) > 3 else "")
            detail = f"{name}: {failed} of the {total} catalogue cases failed: {shown}"
        checks.append(Check(f"probe.{name}.{field}", "probe", failed == 0, detail=detail, expected=0, actual=failed,
                            stage=name))
    return checks
