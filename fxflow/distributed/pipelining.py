"""Run a chain of pipeline stages with torch.distributed.pipelining: one `PipelineStage` per rank,
driven by its GPipe or 1F1B schedule.

fxflow decides the cuts (the partition stage, cut into stages by `pipeline_stages`); torch's
schedules run them. Two ways to start the ranks:

- launch "fxflow": this process starts one process per stage from the forkserver fxflow's own
  executor uses (fxflow.distributed.cluster) and commands them over pipes; it never joins the
  process group itself. This is what a run does by default.
- launch "torchrun": this process *is* one rank, started by torchrun (possibly on another host:
  `torchrun --nnodes=2 --node-rank=R --nproc-per-node=1 --master-addr=HOST --master-port=PORT
  -m fxflow ... transforms.execute.launch=torchrun`). Every rank runs the same fxflow command,
  so every rank issues the same calls; stage 0 reads its inputs, the last stage's output is
  broadcast so every rank's record holds the same checks.

    with PipelinedModule(cut.modules, cut.input_names, schedule="1f1b", microbatches=4) as pm:
        out = pm(x)                                   # forward, every micro-batch through the schedule
        times = pm.measure({"x": x}, repeats=10, step="train")
        proof = pm.train_proof({"x": x}, reference=split)  # losses and gradients against eager

Stage k runs on rank k. Forward calls run under `torch.no_grad()`; a training step uses mean
squared error against a seeded target (the schedule averages the micro-batches' losses, as
`scale_grads` does), so its gradients equal one eager backward over the whole batch.
`TorchSplitStages` builds the stages with pipelining's own front end instead (`pipeline()` and
`SplitPoint`, in each rank, because its stage modules do not pickle): the baseline a benchmark
compares fxflow's cut with.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from fxflow.distributed.cluster import Cluster
from fxflow.distributed.executor import picklable
from fxflow.distributed.microbatch import batch_inputs

Schedule = Literal["gpipe", "1f1b"]
StepKind = Literal["forward", "train"]
SCHEDULES = ("gpipe", "1f1b")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TorchSplitStages:
    """Stage modules cut by torch.distributed.pipelining's own front end: `pipeline(model,
    example micro-batch, {name: SplitPoint.BEGINNING})`, built in the rank that runs the stage."""

    model: nn.Module
    example_args: tuple[torch.Tensor, ...]  # one micro-batch
    split_before: tuple[str, ...]  # module names a new stage begins at

    def __call__(self, stage: int) -> nn.Module:
        from torch.distributed.pipelining import SplitPoint, pipeline

        spec = {name: SplitPoint.BEGINNING for name in self.split_before}
        model = copy.deepcopy(self.model)  # pipeline() marks the split points on the model it traces
        return pipeline(model, mb_args=self.example_args, split_spec=spec).get_stage_module(stage)


@dataclass
class StageSetup:
    """Everything one rank needs, shipped pickled over its control pipe (launch "fxflow")."""

    rank: int
    world_size: int
    module: nn.Module | TorchSplitStages  # the stage, or what builds it in the rank
    schedule: str
    microbatches: int
    device: str = "cpu"
    backend: str = "gloo"
    host: str = "127.0.0.1"
    port: int | None = None  # the caller's TCPStore; None: torchrun's environment
    timeout_s: float = 60.0
    threads: int = 1
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def start(self, progress: Any = None) -> "StageRunner":
        """Called in the rank's process (fxflow.distributed.worker)."""
        return StageRunner(self, progress)


@dataclass(frozen=True)
class _Doing:
    """What a rank is running, for a failure's record (the fxflow executor's `Step` has the same fields)."""

    name: str
    partition: int | None = None


class StageRunner:
    """One rank: its stage of the pipeline, the schedules that drive it, the commands it serves."""

    def __init__(self, setup: StageSetup, progress: Any = None):
        from torch.distributed.pipelining import PipelineStage

        self.began = start = time.perf_counter()
        self.rank = setup.rank
        self.setup = setup
        self.progress = progress
        self.current: _Doing | None = None
        torch.set_num_threads(setup.threads)
        if setup.port is not None:  # a process of its own; under torchrun this is the run's process: its RNG stays
            torch.manual_seed(setup.seed)
        self.device = torch.device(setup.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        for key, value in setup.env.items():
            os.environ.setdefault(key, value)
        timeout = timedelta(seconds=setup.timeout_s)
        if not dist.is_initialized():
            if setup.port is None:
                dist.init_process_group(setup.backend, timeout=timeout)  # torchrun's environment
            else:
                store = dist.TCPStore(setup.host, setup.port, is_master=False, timeout=timeout)
                dist.init_process_group(setup.backend, store=store, rank=setup.rank, world_size=setup.world_size,
                                        timeout=timeout)
        loaded = time.perf_counter()
        module = setup.module(setup.rank) if isinstance(setup.module, TorchSplitStages) else setup.module
        self.module = module.to(self.device)
        self.stage = PipelineStage(self.module, setup.rank, setup.world_size, self.device)
        self.is_first, self.is_last = setup.rank == 0, setup.rank == setup.world_size - 1
        self._schedules: dict[bool, Any] = {}
        self.startup = {"load_s": time.perf_counter() - loaded, "rendezvous_s": loaded - start}

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def _schedule(self, train: bool) -> Any:
        """The configured schedule, forward-only or with the training loss (each built once)."""
        if train not in self._schedules:
            from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe

            kind = ScheduleGPipe if self.setup.schedule == "gpipe" else Schedule1F1B
            loss = _mean_squared_error if train else None
            self._schedules[train] = kind(self.stage, self.setup.microbatches, loss_fn=loss)
        return self._schedules[train]

    def _step(self, arg: dict[str, Any], train: bool, losses: list[Any] | None = None) -> Any:
        """One step of the schedule over the whole batch; the last rank returns the output."""
        self._mark(_Doing(f"stage {self.rank} {'training' if train else 'forward'} step"))
        schedule = self._schedule(train)
        args = tuple(_to(a, self.device) for a in arg["args"]) if self.is_first else ()
        target = _to(arg["target"], self.device) if self.is_last and train else None
        if train:
            for p in self.module.parameters():
                p.grad = None
            out = schedule.step(*args, target=target, losses=losses)
        else:
            with torch.no_grad():
                out = schedule.step(*args)
        self._sync()
        self._mark(None)
        return out

    # -- commands ---------------------------------------------------------------------------

    def forward(self, arg: dict[str, Any]) -> Any:
        """Run requests one after another; the last rank returns their outputs."""
        outputs = [self._step({"args": args}, train=False) for args in arg["requests"]]
        return _cpu(outputs) if self.is_last else None

    def measure(self, arg: dict[str, Any]) -> list[float]:
        """This rank's seconds per step, every rank starting each step together (a barrier)."""
        train, times = arg["train"], []
        for i in range(arg["warmup"] + arg["repeats"]):
            dist.barrier()
            start = time.perf_counter()
            self._step(arg, train=train)
            if i >= arg["warmup"]:
                times.append(time.perf_counter() - start)
        return times

    def train(self, arg: dict[str, Any]) -> dict[str, Any]:
        """One training step: this stage's gradients by parameter name, and the last rank's losses."""
        losses: list[Any] = []
        self._step(arg, train=True, losses=losses)
        grads = {name: p.grad.detach().cpu() for name, p in self.module.named_parameters() if p.grad is not None}
        return {"grads": grads, "losses": [float(v.detach()) for v in losses] if self.is_last else None}

    def _mark(self, doing: _Doing | None) -> None:
        self.current = doing
        if self.progress is not None:
            self.progress[2 * self.rank] = self.rank if doing else -1

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _mean_squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(output, target)


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _cpu(value: Any) -> Any:
    return torch.utils._pytree.tree_map(lambda v: v.detach().cpu() if isinstance(v, torch.Tensor) else v, value)


class PipelinedModule:
    """Stage modules run as a pipeline by torch.distributed.pipelining, one rank per stage.

    stages: the stage modules (stage k on rank k), or a `TorchSplitStages` with `num_stages`.
    input_names: the inputs stage 0 takes, in order (calls bind forward's arguments to them).
    schedule: "gpipe" or "1f1b"; microbatches: the schedule's count (1F1B: at least the stages).
    launch: "fxflow" (this process starts the ranks) or "torchrun" (this process is a rank).
    """

    module_kind = "distributed"  # the stage kind it is (fxflow.stages): not an nn.Module, not a graph

    def __init__(self, stages: Sequence[nn.Module] | TorchSplitStages, input_names: Sequence[str], *,
                 schedule: str = "gpipe", microbatches: int = 1, num_stages: int | None = None,
                 devices: Sequence[str] | None = None, device_names: Sequence[str | None] | None = None,
                 backend: str = "gloo", launch: str = "fxflow", timeout_s: float = 60.0,
                 start_method: str = "forkserver", threads_per_worker: int = 1, host: str = "127.0.0.1",
                 seed: int = 0, partitions: Sequence[list[int]] | None = None):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.stages = stages
        self.num_stages = len(stages) if not isinstance(stages, TorchSplitStages) else int(num_stages or 0)
        if self.num_stages < 2:
            raise ValueError(f"a pipeline needs at least 2 stages, got {self.num_stages}")
        if schedule == "1f1b" and microbatches < self.num_stages:
            raise ValueError(f"1F1B needs at least as many micro-batches as stages ({self.num_stages}), got {microbatches}")
        self.input_names = list(input_names)
        self.schedule, self.microbatches, self.backend, self.launch = schedule, int(microbatches), backend, launch
        self.devices = list(devices or ["cpu"] * self.num_stages)
        self.device_names = list(device_names or [None] * self.num_stages)
        self.timeout_s, self.threads, self.host, self.seed = timeout_s, threads_per_worker, host, seed
        self.startup: dict[str, Any] | None = None
        self.pids: list[int] = []
        self._runner: StageRunner | None = None  # launch "torchrun": this process's rank
        self.partitions = [list(p) for p in partitions] if partitions else [[] for _ in range(self.num_stages)]
        ranks = [{"role": "stage", "device": d, "device_name": n, "partitions": p}
                 for d, n, p in zip(self.devices, self.device_names, self.partitions)]
        self.cluster = Cluster(ranks, [f"stage {k}" for k in range(self.num_stages)], timeout_s=timeout_s,
                               start_method=start_method, host=host) if launch == "fxflow" else None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start the ranks (launch "fxflow") or join the process group as this rank ("torchrun")."""
        if self.startup is not None:
            return self.startup
        if self.cluster is not None:
            self.startup = self.cluster.start(self._setup)
            self.pids = list(self.cluster.pids)
            return self.startup
        missing = [k for k in TORCHRUN_ENV if k not in os.environ]
        if missing:
            raise RuntimeError(f"launch torchrun needs the environment torchrun sets; {missing} are unset")
        world = int(os.environ["WORLD_SIZE"])
        if world != self.num_stages:
            raise RuntimeError(f"launch=torchrun: torchrun started {world} ranks but the pipeline has {self.num_stages} "
                               f"stages: give torchrun one process per stage in all (--nnodes x --nproc-per-node = "
                               f"{self.num_stages})")
        begin = time.perf_counter()
        rank = int(os.environ["RANK"])
        self._runner = self._setup(rank, None).start()
        seen: list[Any] = [None] * world
        dist.all_gather_object(seen, (os.getpid(), self.signature()))
        self.pids = [pid for pid, _ in seen]
        differ = [r for r, (_, sig) in enumerate(seen) if sig != seen[0][1]]
        if differ:
            self.close()
            raise RuntimeError(f"launch=torchrun: ranks {differ} cut the model into other stages than rank 0: every "
                               "rank must plan the same pipeline (a latency model that times nodes can differ between hosts; "
                               "use one that does not, or a placement given ahead of time)")
        self.startup = {"start_method": "torchrun", "rank": rank, "total_s": time.perf_counter() - begin,
                        **self._runner.startup}
        return self.startup

    def close(self) -> None:
        """End every rank (launch "fxflow"), or leave the process group ("torchrun")."""
        if self.cluster is not None:
            self.cluster.close()
        elif self._runner is not None:
            dist.barrier()
            self._runner.close()
            self._runner = None

    def __enter__(self) -> "PipelinedModule":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run([self.bind(*args, **kwargs)])[0]

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Forward's arguments as an input dict by name (as `run` and `measure` take them)."""
        inputs = dict(zip(self.input_names, args))
        if len(args) > len(self.input_names) or set(kwargs) - set(self.input_names) or set(kwargs) & set(inputs):
            raise TypeError(f"expected the inputs {self.input_names}, got {len(args)} positional and {sorted(kwargs)}")
        return {**inputs, **kwargs}

    def run(self, requests: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Outputs of the requests, each one step of the schedule (forward only)."""
        args = {r: {"requests": [()] * len(requests)} for r in range(1, self.num_stages)}
        args[0] = {"requests": [self._args(r) for r in requests]}
        replies = self._command("forward", args)
        return replies[self.num_stages - 1]

    def measure(self, inputs: Mapping[str, Any], *, repeats: int = 10, warmup: int = 2,
                step: str = "forward") -> dict[str, Any]:
        """Seconds per schedule step (the slowest rank's, each step started together), median of
        `repeats` after `warmup`; `step` "train" times forward, loss and backward."""
        train = step == "train"
        arg = {"repeats": repeats, "warmup": warmup, "train": train}
        args = {r: dict(arg) for r in range(self.num_stages)}
        args[0]["args"] = self._args(inputs)
        if train:
            args[self.num_stages - 1]["target"] = self.target(inputs)
        replies = self._command("measure", args)
        samples = [max(replies[r][i] for r in range(self.num_stages)) for i in range(repeats)]
        batch = self._args(inputs)[0].shape[0]
        median = statistics.median(samples)
        return {"step": step, "step_s": median, "step_min_s": min(samples), "step_samples_s": samples,
                "rank_step_s": [statistics.median(replies[r]) for r in range(self.num_stages)],
                "samples_per_s": batch / median if median else None}

    def train_proof(self, inputs: Mapping[str, Any], reference: nn.Module) -> dict[str, Any]:
        """One training step through the pipeline against `reference` run eagerly here on the same
        batch: the schedule's per-micro-batch losses and every stage's gradients, by parameter name."""
        target = self.target(inputs)
        args = {r: {} for r in range(self.num_stages)}
        args[0]["args"] = self._args(inputs)
        args[self.num_stages - 1]["target"] = target
        replies = self._command("train", args)
        grads = {name: g for reply in replies.values() for name, g in reply["grads"].items()}
        losses = replies[self.num_stages - 1]["losses"]

        params = dict(reference.named_parameters())
        saved = {name: p.grad for name, p in params.items()}
        try:
            for p in params.values():
                p.grad = None
            chunks = [torch.tensor_split(a, self.microbatches) for a in self._args(inputs)]
            targets = torch.tensor_split(target, self.microbatches)
            eager_losses = [_mean_squared_error(reference(*(c[i] for c in chunks)), targets[i])
                            for i in range(self.microbatches)]
            (sum(eager_losses) / self.microbatches).backward()
            expected = {name: p.grad.detach().clone() for name, p in params.items() if p.grad is not None}
        finally:
            for name, p in params.items():
                p.grad = saved[name]
        missing = sorted(set(expected) ^ set(grads))
        grad_diff = max(((grads[n] - expected[n]).abs().max().item() for n in expected if n in grads), default=0.0)
        eager = [v.item() for v in eager_losses]
        loss_diff = max(abs(a - b) for a, b in zip(losses, eager))
        close = not missing and all(torch.allclose(grads[n], expected[n], rtol=1e-4, atol=1e-5) for n in expected)
        close = close and all(abs(a - b) <= 1e-5 + 1e-4 * abs(b) for a, b in zip(losses, eager))
        return {"matches": bool(close and len(losses) == self.microbatches), "loss": float(sum(losses) / len(losses)),
                "losses": losses, "max_abs_loss_diff": loss_diff, "max_abs_grad_diff": grad_diff,
                "parameters": len(expected), "unmatched_parameters": missing,
                "reference": "the split module run eagerly in the calling process, same micro-batches",
                "loss_fn": "mse_loss against a seeded randn target, averaged over micro-batches"}

    def target(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        """A seeded random target shaped like the output (the output of a forward call, once)."""
        if not hasattr(self, "_target_shape"):
            out = self.run([inputs])[0]
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"a training step needs one tensor output, the model returns {type(out).__name__}")
            self._target_shape = (out.shape, out.dtype)
        shape, dtype = self._target_shape
        return torch.randn(shape, generator=torch.Generator().manual_seed(self.seed), dtype=dtype)

    def signature(self) -> str:
        """The stages' code, submodules included: equal on two ranks when they planned the same cut."""
        if isinstance(self.stages, TorchSplitStages):
            return repr(self.stages.split_before)
        return repr([[(name, getattr(m, "code", type(m).__name__)) for name, m in stage.named_modules()]
                     for stage in self.stages])

    def describe(self) -> dict[str, Any]:
        """Where every stage runs."""
        ranks = [{"rank": r, "role": "stage", "device": self.devices[r], "device_name": self.device_names[r],
                  "partitions": self.partitions[r], "pid": self.pids[r] if r < len(self.pids) else None}
                 for r in range(self.num_stages)]
        return {"launch": self.launch, "schedule": self.schedule, "microbatches": self.microbatches,
                "world_size": self.num_stages, "ranks": ranks}

    # -- plumbing ---------------------------------------------------------------------------

    def _args(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        missing = [k for k in self.input_names if k not in inputs]
        if missing:
            raise TypeError(f"missing inputs {missing}")
        args = tuple(inputs[k] for k in self.input_names)
        batch = batch_inputs(dict(zip(self.input_names, args)))
        if len(batch) != len(args):
            raise ValueError(f"every input must be a tensor with the batch on dim 0; only {batch} are")
        return args

    def _command(self, name: str, args: dict[int, Any]) -> dict[int, Any]:
        """Every rank runs command `name` with its own argument; every rank's reply."""
        self.start()
        if self.cluster is not None:
            return self.cluster.command(name, args)
        assert self._runner is not None
        reply = getattr(self._runner, name)(args.get(self._runner.rank, {}))
        gathered: list[Any] = [None] * self.num_stages
        dist.all_gather_object(gathered, reply)
        return dict(enumerate(gathered))

    def _setup(self, rank: int, port: int | None) -> StageSetup:
        module = self.stages if isinstance(self.stages, TorchSplitStages) else picklable(self.stages[rank])
        env = {"GLOO_SOCKET_IFNAME": "lo"} if self.host in _LOOPBACK and port is not None else {}
        return StageSetup(rank=rank, world_size=self.num_stages, module=module, schedule=self.schedule,
                          microbatches=self.microbatches, device=self.devices[rank], backend=self.backend,
                          host=self.host, port=port, timeout_s=2 * self.timeout_s + 10, threads=self.threads,
                          seed=self.seed, env=env)
