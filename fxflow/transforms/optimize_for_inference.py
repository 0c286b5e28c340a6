"""Prepare a module for CPU inference with torch's `optimization.optimize_for_inference`."""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, NonNegativeInt, field_validator
from torch.fx import GraphModule
from torch.fx.experimental import optimization

from fxflow.layers import layer_counts
from fxflow.stages import StageFacts
from fxflow.transforms.base import StageContext, Transform

COUNTED = ("batchnorm", "conv", "linear", "dropout", "mkldnn")
LAYOUT_METHODS = ("to_mkldnn", "to_dense")


class MkldnnLayout(BaseModel):
    """torch's `mkldnn_layout_optimize` entry. `heuristic` decides which MKLDNN subgraphs keep
    the MKLDNN layout: `use_mkl_length` (torch's default) keeps those of more than two nodes.
    (torch's `gen_mkl_autotuner` is not offered: in torch 2.13 it reads `Node.shape`, which
    nodes do not have, and fails on every graph.)"""

    model_config = ConfigDict(extra="forbid")

    heuristic: Literal["use_mkl_length"] = "use_mkl_length"


class PassConfig(BaseModel):
    """torch's `pass_config`, key for key; `mkldnn_layout_optimize: false` skips the layout pass
    (held as None), `true` is the default heuristic."""

    model_config = ConfigDict(extra="forbid")

    conv_bn_fuse: bool = True
    remove_dropout: bool = True
    mkldnn_layout_optimize: MkldnnLayout | None = MkldnnLayout()

    @field_validator("mkldnn_layout_optimize", mode="before")
    @classmethod
    def _booleans(cls, value: Any) -> Any:
        return {True: {}, False: None}.get(value, value) if isinstance(value, bool) else value

    def for_torch(self) -> dict[str, Any]:
        layout = self.mkldnn_layout_optimize
        return {"conv_bn_fuse": self.conv_bn_fuse, "remove_dropout": self.remove_dropout,
                "mkldnn_layout_optimize": False if layout is None else {"heuristic": getattr(optimization, layout.heuristic)}}


class OptimizeFacts(StageFacts):
    """Layer counts before and after, the layout conversions, and (with timing) the speed."""

    before: dict[str, int]
    after: dict[str, int]
    layout: dict[str, int]
    speed: dict[str, Any] | None = None


class OptimizeForInference(Transform):
    """Conv/BN fusion, dropout removal and MKLDNN layout conversion, as `pass_config` selects.

        - /transform@transforms.optimize: optimize_for_inference
        transforms.optimize.pass_config.remove_dropout=false

    The layout pass wraps MKLDNN-capable layers in `to_mkldnn`/`to_dense` conversions, merges
    back-to-back conversions, and swaps Conv2d/Linear/BatchNorm2d for torch.utils.mkldnn's layers
    (float32 CPU modules only). A recipe using it states `requires: {mkldnn: true}`.

    Facts: `before`/`after` (layer counts of the given and the returned module: batchnorm, conv,
    linear, dropout, mkldnn), `layout` (how many `to_mkldnn` and `to_dense` nodes the returned
    graph holds) and, when `timing_calls` > 0, `speed`: the median wall time of that many calls
    of the incoming and the optimized module on the recipe's inputs, and their ratio. Speed is
    reported, never expected: it depends on the machine and its load.
    """

    facts_model: ClassVar = OptimizeFacts

    pass_config: PassConfig = PassConfig()
    timing_calls: NonNegativeInt = 5

    def apply(self, gm: GraphModule, ctx: StageContext) -> GraphModule:
        # torch converts the modules of the model it is given in place when nothing copies it first
        # (conv_bn_fuse and remove_dropout both off): hand it a copy so the incoming stage stays intact.
        original = copy.deepcopy(gm)
        with torch.no_grad():
            optimized = optimization.optimize_for_inference(original, pass_config=self.pass_config.for_torch())
        if self.timing_calls:
            before, after = (_median_ms(m, ctx, self.timing_calls) for m in (gm, optimized))
            ctx.facts["speed"] = {"calls": self.timing_calls, "original_ms": before, "optimized_ms": after,
                                  "speedup": round(before / after, 3) if after else None}
        return optimized

    def returned_facts(self, given: GraphModule, returned: torch.nn.Module) -> dict[str, Any]:
        nodes = returned.graph.nodes if isinstance(returned, GraphModule) else []
        return {
            "before": layer_counts(given, COUNTED),
            "after": layer_counts(returned, COUNTED),
            "layout": {m: sum(1 for n in nodes if n.op == "call_method" and n.target == m) for m in LAYOUT_METHODS},
        }


def _median_ms(module: Callable[..., Any], ctx: StageContext, calls: int) -> float:
    """Median milliseconds of `calls` calls on the recipe's inputs, after one warm-up call."""
    times = []
    with torch.no_grad():
        ctx.inputs.call(module)
        for _ in range(calls):
            start = time.perf_counter()
            ctx.inputs.call(module)
            times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)
