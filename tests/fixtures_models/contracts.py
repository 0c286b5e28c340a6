"""Transforms that break the stage contract they declare, and one whose facts merely look like
a partition's: what the runner must catch or must not be fooled by."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel
from torch.fx import GraphModule

from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform


class WrapsWithoutSaying(Transform):
    """Declares the default (gives a GraphModule) but returns a plain nn.Module around it."""

    def apply(self, gm: GraphModule, ctx: StageContext) -> torch.nn.Module:
        return torch.nn.Sequential(gm)


class CountFacts(StageFacts):
    count: int


class ForgetsItsFacts(Transform):
    """Declares that it records `count`, and records nothing."""

    facts_model: ClassVar[type[BaseModel]] = CountFacts

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        return gm


class PartitionLookalike(Transform):
    """Records `partitions` and `devices`, the keys the partition report reads, without being a
    partition stage: no partition report may be drawn for it."""

    probe: ClassVar[bool] = True

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        ctx.facts.update({"partitions": [], "devices": {}, "num_partitions": 0})
        return gm
