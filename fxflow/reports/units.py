"""Figures as people read them."""

from __future__ import annotations


def human_bytes(count: int) -> str:
    """112 B, 4800 B, 12.5 kB, 33.0 MB (decimal units, as device budgets such as 33MB are written)."""
    if count >= 10_000:
        unit, size = next((u, s) for u, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if count >= s)
        return f"{count / size:.1f} {unit}"
    return f"{count} B"
