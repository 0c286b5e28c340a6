"""Where a 1F1B training step's time goes, on the cut `benchmarks/pipelining.py` measures.

The stage times, taken alone, promise less than the step measures. This script runs fxflow's cut of
`WidthChain` (before `layers.4`, the cut fxflow's partitioner makes there) with
torch.distributed.pipelining's 1F1B schedule on two ranks of one thread each, and inside each rank
stamps the time around every piece of a step: the stage module's forward, the autograd backward,
the loss, building and posting the p2p operations, waiting on them, the gradient reduction. It also
times each stage's forward and backward of one micro-batch outside the schedule, once with the other
rank idle and once with both ranks computing at the same time, and sets beside the measured step
what those times promise: for 1F1B over S stages and M micro-batches, the sum of one micro-batch's
forward and backward over the stages, plus (M - 1) times the slowest stage's.

    python benchmarks/pipelining_breakdown.py               # about 30 s on two idle cores
    python benchmarks/pipelining_breakdown.py --repeats 30 --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from fxflow.distributed.pipelining import StageRunner, StageSetup
from pipelining import WIDTHS  # the model benchmarks/pipelining.py measures (this folder is on the path)

EVENTS: list[tuple[str, float, float]] = []  # (what, start, end), in the rank's process


def _stamped(name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, appending (name, start, end) to EVENTS on every call."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            EVENTS.append((name, start, time.perf_counter()))
    return wrapper


def _stamp_pipelining() -> None:
    """Stamp torch's schedule from inside: its module-level p2p helpers and the stage's methods."""
    from torch.distributed.pipelining import schedules, stage

    class Posted(list):  # the works of one post, remembering which post it was
        desc = "?"

    post = schedules._batch_p2p

    def batch_p2p(ops: list, desc: str | None = None) -> list:
        start = time.perf_counter()
        works = Posted(post(ops, desc=desc))
        works.desc = desc or "?"
        EVENTS.append(("p2p post", start, time.perf_counter()))
        return works

    wait = schedules._wait_batch_p2p

    def wait_p2p(works: list) -> None:
        start = time.perf_counter()
        wait(works)
        if works:
            EVENTS.append((f"wait {getattr(works, 'desc', '?')}", start, time.perf_counter()))

    schedules._batch_p2p, schedules._wait_batch_p2p = batch_p2p, wait_p2p
    base = stage._PipelineStageBase
    for method in ("forward_one_chunk", "backward_one_chunk", "perform_reduce_grad"):
        setattr(base, method, _stamped(method, getattr(base, method)))
    for method in ("get_fwd_recv_ops", "get_bwd_recv_ops", "get_fwd_send_ops", "get_bwd_send_ops"):
        setattr(base, method, _stamped("p2p ops built", getattr(base, method)))
    stage.stage_backward = _stamped("autograd backward", stage.stage_backward)
    single = schedules.PipelineScheduleSingle
    single._maybe_compute_loss = _stamped("loss", single._maybe_compute_loss)


class StampedRunner(StageRunner):
    """A pipeline rank that stamps its steps and can time its stage outside the schedule."""

    def __init__(self, setup: StageSetup, progress: Any = None):
        super().__init__(setup, progress)
        began: list[float] = [0.0]
        self.module.register_forward_pre_hook(lambda *_: began.__setitem__(0, time.perf_counter()))
        self.module.register_forward_hook(lambda *_: EVENTS.append(("module forward", began[0], time.perf_counter())))

    def _step(self, arg: dict[str, Any], train: bool, losses: list[Any] | None = None) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return super()._step(arg, train, losses)
        finally:
            EVENTS.append(("step", start, time.perf_counter()))
            EVENTS.append(("main thread CPU", start, start + time.thread_time() - cpu))

    def events(self, arg: dict[str, Any]) -> list[tuple[str, float, float]]:
        taken = list(EVENTS)
        EVENTS.clear()
        return taken

    def alone(self, arg: dict[str, Any]) -> dict[str, list[float]]:
        """Seconds of this stage's forward and backward of one micro-batch, outside the schedule."""
        import torch

        x = torch.randn(arg["shape"], requires_grad=not self.is_first)
        times: dict[str, list[float]] = {"forward": [], "backward": []}
        for _ in range(arg["n"]):
            start = time.perf_counter()
            out = self.module(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            middle = time.perf_counter()
            out.backward(torch.ones_like(out))
            times["forward"].append(middle - start)
            times["backward"].append(time.perf_counter() - middle)
        return times


class StampedSetup(StageSetup):
    def start(self, progress: Any = None) -> StageRunner:
        _stamp_pipelining()
        return StampedRunner(self, progress)


def per_step(events: list[tuple[str, float, float]], warmup: int) -> dict[str, float]:
    """Median over the timed steps of each kind of event's seconds summed within a step."""
    steps = [e for e in events if e[0] == "step"][warmup:]
    sums: dict[str, list[float]] = defaultdict(list)
    for _, s0, s1 in steps:
        total: dict[str, float] = defaultdict(float)
        for name, t0, t1 in events:
            inside = t0 == s0 if name == "main thread CPU" else s0 <= t0 and t1 <= s1
            if inside and name != "step":
                total[name] += t1 - t0
        total["step"] = s1 - s0
        for name, seconds in total.items():
            sums[name].append(seconds)
    return {name: statistics.median(values) for name, values in sums.items()}


def promised(forward: list[float], backward: list[float], microbatches: int) -> float:
    """1F1B's step from per-micro-batch stage times: one micro-batch through every stage and back, then
    the slowest stage for each of the others."""
    per_stage = [f + b for f, b in zip(forward, backward)]
    return sum(per_stage) + (microbatches - 1) * max(per_stage)


def main() -> None:
    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.split_module import split_module

    from fxflow.distributed.pipeline_stages import pipeline_stages
    from fxflow.distributed.pipelining import PipelinedModule
    from fxflow.distributed.plan import Slot
    from fxflow.models.staged import WidthChain

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut-before", default="layers_4", help="the traced node stage 1 begins at")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = WidthChain(WIDTHS)
    x = torch.randn(args.batch, WIDTHS[0], generator=torch.Generator().manual_seed(1))
    gm = symbolic_trace(model)
    order = [n.name for n in gm.graph.nodes if n.op == "call_module"]
    first = order.index(args.cut_before)
    split = split_module(gm, model, lambda n: int(order.index(n.name) >= first) if n.name in order else 0)
    built = pipeline_stages(split, {0: Slot(1), 1: Slot(2)}, {"x": x})

    plain_setup = PipelinedModule._setup

    def stamped_setup(self: PipelinedModule, rank: int, port: int | None) -> StageSetup:
        setup = plain_setup(self, rank, port)
        return StampedSetup(**{name: getattr(setup, name) for name in setup.__dataclass_fields__})

    PipelinedModule._setup = stamped_setup
    micro = [args.batch // args.microbatches, WIDTHS[0]]
    with PipelinedModule(built.modules, ["x"], num_stages=2, schedule="1f1b", microbatches=args.microbatches,
                         timeout_s=120) as pm:
        torch.testing.assert_close(pm(x), model(x).detach())  # the same function as the eager model
        alone: dict[str, dict[int, dict[str, list[float]]]] = {
            when: {r: {"forward": [], "backward": []} for r in (0, 1)} for when in ("one at a time", "both at once")}
        for _ in range(3):  # alternated, so drifting load hits both ways of timing
            for when, counts in (("both at once", (25, 25)), ("one at a time", (25, 0)), ("one at a time", (0, 25))):
                got = pm._command("alone", {r: {"shape": micro, "n": counts[r]} for r in (0, 1)})
                for r in (0, 1):
                    for kind in ("forward", "backward"):
                        alone[when][r][kind] += got[r][kind][5:]
        pm._command("events", {0: {}, 1: {}})
        measured = pm.measure({"x": x}, repeats=args.repeats, warmup=2, step="train")
        events = pm._command("events", {0: {}, 1: {}})

    ms = 1e3
    figures: dict[str, Any] = {"step_s": measured["step_s"], "ranks": {}, "alone": {}, "promised_s": {}}
    print(f"1F1B training step, {args.microbatches} micro-batches of {micro[0]} rows, cut before {args.cut_before}: "
          f"{measured['step_s'] * ms:.2f} ms (the slowest rank's, median of {args.repeats})")
    for when, ranks in alone.items():
        f = [statistics.median(ranks[r]["forward"]) for r in (0, 1)]
        b = [statistics.median(ranks[r]["backward"]) for r in (0, 1)]
        figures["alone"][when] = {"forward_s": f, "backward_s": b}
        figures["promised_s"][when] = promised(f, b, args.microbatches)
        print(f"stages timed outside the schedule, {when}: forward {f[0] * ms:.2f} / {f[1] * ms:.2f} ms, backward "
              f"{b[0] * ms:.2f} / {b[1] * ms:.2f} ms per micro-batch -> 1F1B promises "
              f"{figures['promised_s'][when] * ms:.2f} ms")
    names = ["step", "main thread CPU", "module forward", "forward_one_chunk", "autograd backward",
             "backward_one_chunk", "loss", "p2p ops built", "p2p post", "perform_reduce_grad"]
    for r in (0, 1):
        row = per_step(events[r], warmup=2)
        figures["ranks"][r] = row
        waits = sum(v for k, v in row.items() if k.startswith("wait"))
        pieces = ("forward_one_chunk", "backward_one_chunk", "loss", "p2p ops built", "p2p post", "perform_reduce_grad")
        rest = row["step"] - waits - sum(row.get(k, 0.0) for k in pieces)
        print(f"rank {r}: " + ", ".join(f"{k} {row.get(k, 0.0) * ms:.2f}" for k in names)
              + f", waiting {waits * ms:.2f}, the schedule's own rest {rest * ms:.2f} ms per step")
        print("    waits: " + ", ".join(f"{k[5:]} {v * ms:.2f}" for k, v in sorted(row.items()) if k.startswith("wait")))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
