"""Small models for the pipeline's features: expected raises, structured and keyword inputs."""

from __future__ import annotations

from typing import NamedTuple

import torch


class AssertEqual(torch.nn.Module):
    """assert a == b with a message, then a + b."""

    def forward(self, a, b):
        assert a == b, "a and b differ"
        return a + b


class Pair(NamedTuple):
    x: int
    y: float


class Structured(torch.nn.Module):
    """A tuple, a list and a NamedTuple in; one tensor out."""

    def forward(self, inp: tuple, items: list, pair: Pair):
        return inp[0] * inp[1] + items[0] + pair.x + pair.y


class KwargsExpansion(torch.nn.Module):
    def forward(self, x, **kwargs):
        return x + kwargs["foo"]


from typing import ClassVar  # noqa: E402

from fxflow.transforms.base import StageContext, Transform  # noqa: E402


class CountCalls(Transform):
    """A probe: records how many call nodes the graph has and returns it unchanged."""

    probe: ClassVar[bool] = True

    def apply(self, gm, ctx: StageContext):
        ctx.facts["calls"] = sum(1 for n in gm.graph.nodes if n.op.startswith("call_"))
        return gm


class Negate(Transform):
    """Not a probe, but changes the computation: every output is negated."""

    def apply(self, gm, ctx: StageContext):
        (out,) = [n for n in gm.graph.nodes if n.op == "output"]
        with gm.graph.inserting_before(out):
            neg = gm.graph.call_function(torch.neg, (out.args[0],))
        out.args = (neg,)
        gm.recompile()
        return gm
