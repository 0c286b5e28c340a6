"""Run a split module with one process per device and measure it.

    with DistributedModule(split, placement, backend="gloo") as dm:
        out = dm(a, b, offset)                       # one request, args in forward's order
        measurement = dm.measure({"a": a, "b": b, "offset": offset}, repeats=10, microbatches=4)

or in one call: `output, measurement = run_partitioned(split, placement, inputs)`.
"""

from __future__ import annotations

import copy
import operator
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.fx import GraphModule

from fxflow.distributed.cluster import Cluster
from fxflow.distributed.measurement import summarize
from fxflow.distributed.microbatch import batch_inputs, merge_batches, split_batch
from fxflow.distributed.plan import DRIVER, SlotAssignment, build_plan
from fxflow.distributed.worker import RankSetup

_LOOPBACK = ("127.0.0.1", "localhost")


class DistributedModule:
    """A split module (top-level graph calling `submod_<pid>`) executed by one worker process per
    device in `placement`, plus a driver process (rank 0) that holds inputs and outputs.

    backend: "gloo" (CPU), or "nccl" for CUDA devices (CPU values then still go over gloo).
    timeout_s: the longest one command (a call, a measurement phase) may take before every
    process is ended; start_timeout_s the same for start-up (default: timeout_s).
    start_method: "forkserver" (torch imported once, ranks start in milliseconds) or "spawn".
    threads_per_worker: torch intra-op threads in each process (1 keeps ranks off each other's cores).
    Execution is forward-only under `torch.no_grad()`; each rank seeds its own RNG with `seed`.
    """

    module_kind = "distributed"  # the stage kind it is (fxflow.stages): not an nn.Module, not a graph

    def __init__(self, split: GraphModule, placement: SlotAssignment | Mapping[int, Any], backend: str = "gloo", *,
                 timeout_s: float = 60.0, start_timeout_s: float | None = None, start_method: str = "forkserver",
                 threads_per_worker: int = 1, host: str = "127.0.0.1", seed: int = 0):
        self.split = split
        self.placement = SlotAssignment.of(placement)
        self.plan = build_plan(split, self.placement)
        cuda = any(torch.device(d).type == "cuda" for d in self.plan.devices.values())
        if cuda and backend == "gloo":
            raise ValueError("CUDA devices in the placement need a CUDA backend (backend='nccl')")
        if backend == "nccl":
            by_gpu: dict[torch.device, list[int]] = {}
            for rank, device in self.plan.devices.items():
                dev = torch.device(device)
                if dev.type == "cuda":
                    by_gpu.setdefault(torch.device("cuda", dev.index or 0), []).append(rank)
            shared = {str(d): r for d, r in by_gpu.items() if len(r) > 1}
            if shared:
                raise ValueError(f"NCCL needs one GPU per rank, but ranks share GPUs: {shared}; give each device its "
                                 "own cuda:N, or put some on cpu")
        self.backend = backend
        self.threads_per_worker = threads_per_worker
        self.host = host
        self.seed = seed
        self.startup: dict[str, Any] | None = None
        ranks = self.plan.describe()["ranks"]
        self.cluster = Cluster(ranks, [s.name for s in self.plan.steps], timeout_s=timeout_s,
                               start_timeout_s=start_timeout_s, start_method=start_method, host=host)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start the processes (once); start-up timings."""
        if self.startup is None:
            self.startup = self.cluster.start(self._setup)
        return self.startup

    def close(self) -> None:
        """End every process (also done at garbage collection and interpreter exit)."""
        self.cluster.close()

    def __enter__(self) -> "DistributedModule":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Where everything runs (ranks, pids, placement, partition DAG) and the start-up timings,
        without measuring: the measurement's first keys."""
        return summarize(self, None, {}, None, 0)

    # -- requests ---------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run([self.bind(*args, **kwargs)])[0]

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Forward's arguments as the input dict (by placeholder name) that `run` and `measure` take."""
        names = [s.name for s in self.plan.inputs]
        if len(args) > len(names):
            raise TypeError(f"expected at most {len(names)} inputs ({names}), got {len(args)}")
        inputs = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in inputs:
                raise TypeError(f"unexpected or repeated input {key!r} (inputs: {names})")
            inputs[key] = value
        return inputs

    def run(self, requests: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Outputs of the requests, one after the other."""
        return self._run([[self._check(r)] for r in requests])[DRIVER]["outputs"]

    def _check(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        missing = [s.name for s in self.plan.inputs if s.name not in inputs and not s.has_default]
        if missing:
            raise TypeError(f"missing inputs {missing}")
        return dict(inputs)

    def _run(self, waves: list[list[dict[str, Any]]]) -> dict[int, Any]:
        self.start()
        args = {rank: {"waves": [len(w) for w in waves]} for rank in self.plan.devices}
        args[DRIVER] = {"waves": waves}
        return self.cluster.command("run", args)

    # -- measurement ------------------------------------------------------------------------

    def measure(self, inputs: Mapping[str, Any], *, repeats: int = 10, warmup: int = 2, probe_repeats: int = 10,
                microbatches: int = 0, split_inputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Measure one request's compute per partition, transfer per crossing edge and end-to-end
        latency (medians of `repeats` after `warmup`), and with `microbatches` > 1 the
        pipelined throughput. Returns the JSON-able dict described in `fxflow.distributed`."""
        if repeats < 1 or warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        inputs = self._check(inputs)
        requests = self._run([[inputs]] * (warmup + repeats))
        probe = self._probe(probe_repeats, warmup)
        full = requests[DRIVER]["outputs"][-1]
        pipeline = self._pipeline(inputs, full, microbatches, repeats, warmup, split_inputs) if microbatches > 1 else None
        return summarize(self, requests, probe, pipeline, warmup)

    def _probe(self, repeats: int, warmup: int) -> dict[int, list[float]]:
        if repeats < 1 or not self.plan.edges:
            return {}
        edges = [(e.value, e.src_rank, e.dst_rank) for e in self.plan.edges]
        arg = {"edges": edges, "repeats": repeats, "warmup": warmup}
        replies = self.cluster.command("probe", {rank: arg for rank in self.plan.devices})
        return {i: samples for reply in replies.values() for i, samples in reply.items()}

    def _pipeline(self, inputs: dict[str, Any], full: Any, count: int, repeats: int, warmup: int,
                  names: Sequence[str] | None) -> dict[str, Any]:
        """Micro-batches streamed through the ranks (GPipe's forward schedule on a chain) against
        the same micro-batches one after another; the joined output against the full batch's."""
        chunks = split_batch(inputs, count, names)
        streamed = self._run([chunks] * (warmup + repeats))
        one_by_one = self._run([[c] for c in chunks] * (warmup + repeats))
        waves = streamed[DRIVER]["waves_s"][warmup:]
        serial = one_by_one[DRIVER]["waves_s"][warmup * count:]
        serial_totals = [sum(serial[i : i + count]) for i in range(0, len(serial), count)]
        merged = merge_batches(streamed[DRIVER]["outputs"][-count:])
        matches, diff = _agree(full, merged)
        compute = {}
        for rank, reply in streamed.items():
            for stats in reply["requests"][warmup * count:]:
                for name, seconds in stats["compute_s"].items():
                    compute.setdefault(name, []).append(seconds)
        stage_s = {self.plan.steps[i].partition: statistics.median(compute[s.name])
                   for i, s in enumerate(self.plan.steps) if s.partition is not None and s.name in compute}
        ideal = sum(stage_s.values()) + (count - 1) * max(stage_s.values(), default=0.0)
        batch = inputs[batch_inputs(inputs, names)[0]].shape[0]
        pipelined = statistics.median(waves)
        sequential = statistics.median(serial_totals)
        return {
            "schedule": "gpipe-forward",
            "chain": self.plan.is_chain(),
            "microbatches": count,
            "batch": int(batch),
            "split_inputs": batch_inputs(inputs, names),
            "pipelined_s": pipelined,
            "sequential_microbatches_s": sequential,
            "speedup": sequential / pipelined if pipelined else None,
            "samples_per_s": batch / pipelined if pipelined else None,
            "stage_compute_s": {str(k): v for k, v in sorted(stage_s.items())},
            "ideal_compute_only_s": ideal,
            "matches_full_batch": matches,
            "max_abs_diff": diff,
        }

    # -- setup ------------------------------------------------------------------------------

    def _setup(self, rank: int, port: int) -> RankSetup:
        modules = {s.target: picklable(self.split.get_submodule(s.target))
                   for s in self.plan.steps if s.home == rank and s.op == "call_module"}
        constants = {name: operator.attrgetter(self.plan.constant_targets[name])(self.split)
                     for name, readers in self.plan.constant_readers.items() if rank in readers}
        env = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"} if self.host in _LOOPBACK else {}
        return RankSetup(rank=rank, plan=self.plan, modules=modules, constants=constants, backend=self.backend,
                         host=self.host, port=port, timeout_s=2 * max(self.cluster.timeout_s, self.cluster.start_timeout_s) + 10, threads=self.threads_per_worker,
                         seed=self.seed, env=env)


def run_partitioned(split: GraphModule, placement: SlotAssignment | Mapping[int, Any], inputs: Mapping[str, Any],
                    backend: str = "gloo", *, measure: bool = True, repeats: int = 10, warmup: int = 2,
                    probe_repeats: int = 10, microbatches: int = 0, split_inputs: Sequence[str] | None = None,
                    **options: Any) -> tuple[Any, dict[str, Any]]:
    """Start the processes, run `inputs` once, optionally measure, end every process.

    Returns (output, record): record is the measurement dict when `measure`, else the
    run's description (placement, ranks, pids, start-up timings)."""
    with DistributedModule(split, placement, backend, **options) as dm:
        output = dm.run([dict(inputs)])[0]
        if not measure:
            return output, dm.describe()
        return output, dm.measure(inputs, repeats=repeats, warmup=warmup, probe_repeats=probe_repeats,
                                  microbatches=microbatches, split_inputs=split_inputs)


def picklable(module: torch.nn.Module) -> torch.nn.Module:
    """A GraphModule whose placeholders carry string annotations ('torch.Tensor', from a model
    written with `from __future__ import annotations`) does not pickle: fx emits the string as a
    global of the generated code. Ship a copy without those annotations (same parameters)."""
    if not isinstance(module, GraphModule) or not any(isinstance(n.type, str) for n in module.graph.nodes):
        return module
    graph = copy.deepcopy(module.graph)
    for node in graph.nodes:
        if isinstance(node.type, str):
            node.type = None
    return GraphModule(module, graph, class_name=type(module).__name__)


def _agree(expected: Any, actual: Any) -> tuple[bool, float]:
    exp, act = torch.utils._pytree.tree_leaves(expected), torch.utils._pytree.tree_leaves(actual)
    worst = 0.0
    for e, a in zip(exp, act):
        if isinstance(e, torch.Tensor):
            if e.shape != a.shape:
                return False, float("nan")
            if e.numel():
                worst = max(worst, (e.double() - a.double()).abs().max().item())
    try:
        torch.testing.assert_close(actual, expected)
    except (AssertionError, TypeError):
        return False, worst
    return True, worst
