"""The recipe's `expect:`: figures that recorded facts must show, and errors that must happen.

Facts are flattened to dotted metric names (`partition.partitions.0.latency`). An
expectation is written as nested YAML under `expect.metrics`; a leaf is a value (checked
for equality) or a comparison mapping such as `{approx: 208.0, rel: 1e-9}`, `{ge: 2}`,
`{len: 4}`, `{contains: dev_2}`, `{excludes: call_module:torch.nn.BatchNorm2d}`,
`{subset: [a, b]}` (every recorded item is one of these), `{superset: [a]}` (all of these were
recorded), `{matches: REGEX}`. A `*` segment matches every index or key at that level
(`partitions.*.used_mem_bytes: 48`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from fxflow.checks.equivalence import Reference, call_replayed
from fxflow.checks.result import Check
from fxflow.config.schema import ExpectedError, ExpectedRaise
from fxflow.inputs import InputSet

COMPARATORS = {"eq", "ne", "lt", "le", "gt", "ge", "approx", "rel", "abs", "len", "contains", "excludes", "subset",
               "superset", "matches"}


def _is_comparison(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(map(str, value)) <= COMPARATORS


def flatten_expectations(value: Any, prefix: str = "") -> dict[str, Any]:
    """Like `flatten`, but a comparison mapping is a leaf."""
    if isinstance(value, dict) and not _is_comparison(value):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten_expectations(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _pattern(key: str) -> re.Pattern[str]:
    return re.compile("^" + r"\.".join("[^.]+" if part == "*" else re.escape(part) for part in key.split(".")) + "$")


def judge(actual: Any, expected: Any) -> tuple[bool, str]:
    """One expectation against one recorded value: (holds, what was expected and what was seen)."""
    if not _is_comparison(expected):
        return _equal(actual, expected), f"expected {expected!r}, got {actual!r}"
    ops = {str(k): v for k, v in expected.items()}
    if set(ops) <= {"rel", "abs"}:
        return False, f"{ops} only modifies a comparison; add approx: VALUE"
    checks = []
    for op, want in ops.items():
        if op in ("rel", "abs"):
            continue
        if op == "approx":
            ok = isinstance(actual, (int, float)) and math.isclose(actual, want, rel_tol=ops.get("rel", 1e-9), abs_tol=ops.get("abs", 0.0))
        elif op == "len":
            ok = hasattr(actual, "__len__") and len(actual) == want
        elif op == "contains":
            ok = hasattr(actual, "__contains__") and want in actual
        elif op == "excludes":
            ok = hasattr(actual, "__contains__") and all(w not in actual for w in _items(want))
        elif op == "subset":
            ok = _is_collection(actual) and all(a in _items(want) for a in actual)
        elif op == "superset":
            ok = _is_collection(actual) and all(w in actual for w in _items(want))
        elif op == "matches":
            ok = isinstance(actual, str) and re.search(str(want), actual) is not None
        else:
            try:
                ok = {"eq": _equal, "ne": lambda a, b: not _equal(a, b), "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
                      "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}[op](actual, want)
            except TypeError:
                ok = False
        checks.append(ok)
    return all(checks), f"expected {ops}, got {actual!r}"


def _items(value: Any) -> list[Any]:
    """A comparison's operand as a list: `excludes: x` and `excludes: [x, y]` both work."""
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _is_collection(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, dict))


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(_equal(a, e) for a, e in zip(actual, expected))
    return actual == expected


def check_metrics(metrics: dict[str, Any], expected: dict[str, Any]) -> list[Check]:
    """One check per expectation (a `*` expectation passes only if it matches and all matches pass)."""
    checks = []
    for key, want in flatten_expectations(expected).items():
        pattern = _pattern(key)
        matched = {name: value for name, value in metrics.items() if pattern.match(name)}
        if not matched:
            prefix = key.split(".")[0]
            near = sorted(name for name in metrics if name.startswith(prefix))[:8]
            checks.append(Check(f"expect.{key}", "expectation", False, expected=want,
                                detail=f"no metric '{key}' was recorded; recorded under '{prefix}': {near}"))
            continue
        failures = []
        for name, value in matched.items():
            ok, detail = judge(value, want)
            if not ok:
                failures.append(f"{name}: {detail}")
        actual = next(iter(matched.values())) if len(matched) == 1 else matched
        checks.append(Check(f"expect.{key}", "expectation", not failures, expected=want, actual=actual,
                            detail="; ".join(failures) or _shown(matched)))
    return checks


def _shown(matched: dict[str, Any]) -> str:
    if len(matched) == 1:
        name, value = next(iter(matched.items()))
        return f"{name} = {value!r}"
    return f"all {len(matched)} matches hold: " + ", ".join(sorted(matched))


def check_error(expected: ExpectedError | None, stage: str | None, error: BaseException | None) -> Check | None:
    """The expected-error check, or None when the recipe expects no error."""
    if expected is None:
        return None
    want = expected.model_dump()
    if error is None:
        return Check("expect.error", "error", False, expected=want, stage=expected.stage,
                     detail=f"expected {expected.type} at stage '{expected.stage}', but every stage succeeded")
    ok = stage == expected.stage and error_matches(error, expected.type, expected.match)
    return Check("expect.error", "error", ok, expected=want, stage=stage,
                 actual={"stage": stage, "type": type(error).__name__, "message": str(error)},
                 detail=("refused as expected: " if ok else f"a different error or stage ({stage}): ") + str(error))


def error_matches(error: BaseException, type_name: str, pattern: str) -> bool:
    """The error is of `type_name` (a class name or dotted path anywhere in its MRO) and its
    message matches the regular expression `pattern`."""
    names = {cls.__name__ for cls in type(error).__mro__} | {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}
    return type_name in names and re.search(pattern, str(error)) is not None


def check_raises(name: str, stage: str, module: Any, reference: Reference | None, inputs: InputSet,
                 rng_seed: int | None, expected: ExpectedRaise) -> Check:
    """Call the stage's module (and the reference, when it is to be held to the same) on the
    given inputs; each must raise the expected type with a matching message."""
    want = {"type": expected.type, "match": expected.match}
    callees = [(f"stage {stage}", module)] + ([(reference.label, reference.fn)] if reference is not None else [])
    seen, failures = {}, []
    for label, fn in callees:
        try:
            result = call_replayed(fn, inputs, rng_seed)
        except Exception as exc:  # noqa: BLE001 - the exception is what is being checked
            seen[label] = {"type": type(exc).__name__, "message": str(exc)}
            if not error_matches(exc, expected.type, expected.match):
                failures.append(f"{label} raised {type(exc).__name__}: {str(exc).strip()[:200]!r}")
        else:
            seen[label] = {"returned": type(result).__name__}
            failures.append(f"{label} returned without raising")
    detail = "; ".join(failures) or (f"{' and '.join(seen)} raised {expected.type} matching {expected.match!r} "
                                     f"on inputs {', '.join(inputs)}")
    return Check(name, "raises", not failures, detail=detail, expected=want, actual=seen, stage=stage,
                 reference=reference.label if reference is not None else None)
