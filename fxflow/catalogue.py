"""Running a catalogue of cases (torch's own test lists) and tallying how each came out.

Catalogue probes (`normalize_modules_catalogue`, `normalize_opinfo_catalogue`) walk a list that
torch ships in `torch.testing._internal`; each case passes, fails (with the reason) or is skipped
(with the reason). `Tally.facts()` is what they record:

    {"total": 6, "passed": 4, "failed": 1, "skipped": 1,
     "skip_reasons": {"not a torch.nn class": 1}, "failures": ["Foo: outputs differ ..."]}
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

from fxflow.requirements import RequirementMissing
from fxflow.stages import StageFacts

LISTED_FAILURES = 20  # failures named in the facts; the counts cover all of them


class CatalogueFacts(StageFacts):
    """A catalogue probe's tally: cases run, passed, failed and skipped (why), the first failures."""

    total: int
    passed: int
    failed: int
    skipped: int
    skip_reasons: dict[str, int]
    failures: list[str]


@dataclass
class Tally:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def passes(self, name: str) -> None:
        self.passed.append(name)

    def fails(self, name: str, reason: str) -> None:
        self.failed[name] = " ".join(reason.split())[:300]

    def skips(self, name: str, reason: str) -> None:
        self.skipped[name] = reason

    def facts(self) -> dict[str, Any]:
        return {
            "total": len(self.passed) + len(self.failed) + len(self.skipped),
            "passed": len(self.passed), "failed": len(self.failed), "skipped": len(self.skipped),
            "skip_reasons": dict(Counter(self.skipped.values()).most_common()),
            "failures": [f"{name}: {why}" for name, why in list(self.failed.items())[:LISTED_FAILURES]],
        }


def select(names: list[str], include: list[str], limit: int | None) -> list[str]:
    """The names matching any `include` regular expression (all when empty), the first `limit` of them."""
    patterns = [re.compile(p) for p in include]
    chosen = [n for n in names if not patterns or any(p.search(n) for p in patterns)]
    return chosen[:limit] if limit is not None else chosen


def testing_internal(module: str) -> ModuleType:
    """Import `torch.testing._internal.<module>`; RequirementMissing (the run is skipped) where
    this torch build lacks it or its test dependency `expecttest` is not installed."""
    try:
        return importlib.import_module(f"torch.testing._internal.{module}")
    except ImportError as exc:
        raise RequirementMissing(f"torch.testing._internal.{module} cannot be imported ({exc}); "
                                 "install the test extra: pip install 'fxflow[catalogues]'") from exc


def assert_same(expected: Any, actual: Any, what: str) -> None:
    """torch's comparison for test outputs (default tolerances per dtype, NaN equal to NaN, sparse
    and nested outputs handled); AssertionError naming `what` when they differ."""
    try:
        torch.testing.assert_close(actual, expected, equal_nan=True)
    except TypeError:  # values assert_close does not compare (strings, custom objects)
        if actual != expected:
            raise AssertionError(f"{what} differs: expected {expected!r}, got {actual!r}") from None
    except AssertionError as exc:
        raise AssertionError(f"{what} differs: {' '.join(str(exc).split())[:200]}") from None
