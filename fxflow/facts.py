"""Facts are what stages record (nested JSON under the stage's name); metrics are the same facts
flattened to dotted names (`partition.partitions.0.latency`). Expectations, reports and sweep
summaries read metrics by those names."""

from __future__ import annotations

from typing import Any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested facts -> flat dotted map; lists of scalars stay values, lists of mappings get indices."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        flat = {}
        for index, inner in enumerate(value):
            flat.update(flatten(inner, f"{prefix}.{index}"))
        return flat
    return {prefix: value}
