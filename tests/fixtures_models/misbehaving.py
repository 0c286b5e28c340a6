"""Test-only components that misbehave on purpose: a reference that raises when called, a
transform that sleeps (to be interrupted), one that is interrupted, and one that copies the
summary.json present while it runs into its facts. Tests trust this package through
FXFLOW_TRUSTED_PACKAGES, as a user trusts their own."""

from __future__ import annotations

import json
import time

import torch
from torch.fx import GraphModule

from fxflow.transforms.base import StageContext, Transform


class RaisingReference(torch.nn.Module):
    """A reference model that builds but raises when called (its message holds rich markup)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("reference [bold]exploded[/] on purpose")


class Sleep(Transform):
    """Marks `<stage>/started` in the record, then sleeps: a run to interrupt mid-transform."""

    seconds: float = 30.0

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        (ctx.artifacts / "started").write_text("started")
        time.sleep(self.seconds)
        return gm


class Interrupt(Transform):
    """Raises KeyboardInterrupt, as Ctrl-C does in the middle of a transform."""

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        raise KeyboardInterrupt


class PeekSummary(Transform):
    """Copies the status and process fields of the summary.json written so far into its facts."""

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        summary = json.loads((ctx.artifacts.parent / "summary.json").read_text())
        ctx.facts.update(status=summary["status"], incomplete=summary.get("incomplete", ""),
                         pid=summary["process"]["pid"])
        return gm
