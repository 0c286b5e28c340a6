"""The one result type every check produces, so the pipeline, the terminal, the record and the
sweep summary read the same fields instead of string keys of ad-hoc dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CheckKind = Literal["equivalence", "expectation", "error", "raises", "skip", "probe"]


@dataclass
class Check:
    """One verdict: what was checked, whether it held, and what people need to see why.

    `reference` names what a stage was compared with (equivalence checks only); `extra` holds
    kind-specific figures (input sets run, largest difference, whether the RNG was replayed).
    A check that is not `binding` is shown but does not decide the run's status: a recipe's
    pinned figures in a run whose overrides changed the scenario (fxflow.checks.scenario).
    """

    name: str
    kind: CheckKind
    passed: bool
    detail: str = ""
    expected: Any = None
    actual: Any = None
    stage: str | None = None
    reference: str | None = None
    binding: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The summary.json form: `name` and `passed` first, empty fields left out."""
        data = asdict(self)
        extra = data.pop("extra")
        ordered = {"name": data.pop("name"), "passed": data.pop("passed")}
        ordered.update({k: v for k, v in data.items() if v is not None and v != ""})
        ordered.update(extra)
        return ordered
