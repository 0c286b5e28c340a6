"""The program every rank runs in its own process: load its share of the split module, join the
process group, then execute requests, transfer probes and shutdown as the caller commands.

Rank 0 is the driver: it holds the request's inputs (the split module's placeholders), runs any
top-level glue, and assembles the output. Ranks 1..W each run the partitions placed on them.
Every rank walks the same top-level steps in graph order, computes the ones whose home it is,
sends each computed value to the ranks that read it (non-blocking) and receives a remote value
only when a local step first needs it, so independent branches on different ranks overlap and
consecutive requests stream through a chain of stages (a forward-only GPipe schedule).

The caller talks to each rank over a control pipe (pickled messages): "hello" and "ready" at
start-up, then one reply per command, or "error" with the exception, its traceback and the
step it was running. A rank never outlives its caller: a daemon thread watches a lifeline pipe
whose other end only the caller holds, and exits the process when it closes.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.distributed as dist

from fxflow.distributed.plan import DRIVER, Plan, Ref, Step, map_values
from fxflow.distributed.wire import Sent, Wire

# Imported by the forkserver once, so that forking a rank costs milliseconds, not a torch import.
# (Like every multiprocessing child, a rank still runs the caller's script as __mp_main__ when
# the caller is a script, `python x.py`; keep its heavy imports under `if __name__ == "__main__"`.
# `python -m pkg` callers such as `python -m fxflow` or `python -m pytest` are not re-run.)
# torch.distributed.pipelining (the pipelining engine's ranks) takes ~0.9 s to import on its own.
PRELOAD = ("torch", "torch.distributed", "torch.distributed.pipelining", "fxflow.distributed.worker")
IDLE = -1


@dataclass
class RankSetup:
    """Everything one rank needs, shipped pickled over its control pipe."""

    rank: int
    plan: Plan
    modules: dict[str, torch.nn.Module]  # call_module targets this rank runs
    constants: dict[str, Any]  # get_attr node name -> value this rank reads
    backend: str  # "gloo", or a CUDA backend ("nccl") paired with gloo for CPU tensors
    host: str
    port: int  # the caller's TCPStore
    timeout_s: float  # a rank's own limit on any one wait, a backstop behind the caller's deadline
    threads: int = 1
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def start(self, progress: Any) -> "RankRunner":
        """The rank's program, built in the rank's process (other setups start other programs)."""
        return RankRunner(self, progress)


def worker_main(rank: int, conn: Connection, lifeline: Connection, progress: Any) -> None:
    """Process entry point of rank `rank`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides what Ctrl-C ends
    threading.Thread(target=_exit_when_closed, args=(lifeline,), daemon=True).start()
    runner: Any = None  # RankRunner, or another setup's program with the same commands
    try:
        _reply(conn, "hello", {"pid": os.getpid()})
        data = conn.recv_bytes()
        start = time.perf_counter()
        setup = pickle.loads(data)  # a RankSetup, or another program's setup with `start`
        runner = setup.start(progress)  # this executor's RankRunner, or a pipeline stage's runner
        runner.startup["load_s"] += runner.began - start
        _reply(conn, "ready", runner.startup)
        while True:
            command, arg = pickle.loads(conn.recv_bytes())
            if command == "stop":
                break
            _reply(conn, "ok", getattr(runner, command)(arg))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
        step = runner.current if runner else None
        report = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
            "step": step.name if step else None,
            "partition": step.partition if step else None,
            "phase": "run" if runner else "startup",
        }
        try:
            _reply(conn, "error", report)
            conn.recv_bytes()  # stay (sockets open, so peers see no spurious failure) until stopped or killed
        except BaseException:  # noqa: BLE001
            pass
        os._exit(1)
    runner.close()


def _reply(conn: Connection, kind: str, payload: Any) -> None:
    conn.send_bytes(pickle.dumps((kind, payload)))


def _exit_when_closed(lifeline: Connection) -> None:
    try:
        lifeline.poll(None)  # returns at EOF: the caller is gone
    finally:
        os._exit(3)


class RankRunner:
    """One rank's share of the plan, its modules on its device, and the commands it serves."""

    def __init__(self, setup: RankSetup, progress: Any):
        self.began = start = time.perf_counter()
        self.rank = setup.rank
        self.plan = setup.plan
        self.progress = progress
        self.current: Step | None = None
        torch.set_num_threads(setup.threads)
        torch.manual_seed(setup.seed)
        self.device = torch.device(self.plan.devices[self.rank])
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.modules = {name: m.to(self.device) for name, m in setup.modules.items()}
        self.constants = {name: _to(v, self.device) for name, v in setup.constants.items()}
        self.home = {s.name: s.home for s in self.plan.steps}
        mine = [s for s in self.plan.steps if s.home == self.rank]
        self.input_steps = [s for s in mine if s.op == "placeholder"]
        self.compute_steps = [s for s in mine if s.op != "placeholder"]
        self.index = {s.name: i for i, s in enumerate(self.plan.steps)}
        self.next_request = 0
        self.last_values: dict[str, Any] = {}
        loaded = time.perf_counter()

        for key, value in setup.env.items():
            os.environ.setdefault(key, value)
        store = dist.TCPStore(setup.host, setup.port, is_master=False, timeout=timedelta(seconds=setup.timeout_s))
        cuda = setup.backend != "gloo"
        backend = setup.backend if not cuda or ":" in setup.backend else f"cpu:gloo,cuda:{setup.backend}"
        dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.plan.world_size,
                                timeout=timedelta(seconds=setup.timeout_s))
        self.control_group = dist.new_group(backend="gloo") if cuda else None
        self.wire = Wire(self.rank, self.plan.devices, cuda_backend=cuda)
        self.startup = {"load_s": loaded - start, "rendezvous_s": time.perf_counter() - loaded}

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # -- commands ---------------------------------------------------------------------------

    def run(self, arg: dict[str, Any]) -> dict[str, Any]:
        """Execute waves of requests. A wave's requests stream (inputs of all of them are sent
        first, nothing waits for an output); waves follow one another. Rank 0 gets
        `waves` as lists of input dicts, the other ranks as request counts; rank 0 replies
        with every request's output."""
        result: dict[str, Any] = {"requests": [], "waves_s": [], "latency_s": [], "outputs": []}
        with torch.no_grad():
            for wave in arg["waves"]:
                count = len(wave) if self.rank == DRIVER else int(wave)
                first = self.next_request
                self.next_request += count
                envs: list[dict[str, Any]] = [{} for _ in range(count)]
                stats = [{"compute_s": {}, "recv": []} for _ in range(count)]
                sent: list[Sent] = []
                started = time.perf_counter()
                begins = []
                for i in range(count):
                    begins.append(time.perf_counter())
                    for step in self.input_steps:
                        inputs = wave[i]
                        value = inputs[step.name] if step.name in inputs else step.default
                        envs[i][step.name] = value
                        sent += self._send(step, first + i, value)
                outputs = []
                for i in range(count):
                    for step in self.compute_steps:
                        self._mark(step)
                        if step.op == "output":
                            outputs.append(self._resolve_all(step.args[0], envs[i], first + i, stats[i]))
                            result["latency_s"].append(time.perf_counter() - begins[i])
                            continue
                        value = self._compute(step, envs[i], first + i, stats[i])
                        envs[i][step.name] = value
                        sent += self._send(step, first + i, value)
                    self._mark(None)
                for s in sent:
                    s.wait()
                result["waves_s"].append(time.perf_counter() - started)
                result["requests"] += stats
                if count:
                    self.last_values.update({k: v for k, v in envs[-1].items() if self._sends(k)})
                result["outputs"] += outputs
        return result

    def probe(self, arg: dict[str, Any]) -> dict[int, list[float]]:
        """Time each crossing edge alone: its last value goes src -> dst and back, half of the
        round trip per sample; edges one at a time behind a barrier. Returns the src rank's samples."""
        samples: dict[int, list[float]] = {}
        warmup, repeats = int(arg["warmup"]), int(arg["repeats"])
        for i, (name, src, dst) in enumerate(arg["edges"]):
            dist.barrier(group=self.control_group)
            if self.rank == src:
                value, times = self.last_values[name], []
                for j in range(warmup + repeats):
                    start = time.perf_counter()
                    self.wire.send(("probe", i, j), value, dst).wait()
                    self.wire.recv(("echo", i, j), dst)
                    self._sync()
                    if j >= warmup:
                        times.append((time.perf_counter() - start) / 2)
                samples[i] = times
            elif self.rank == dst:
                for j in range(warmup + repeats):
                    got = self.wire.recv(("probe", i, j), src)
                    self.wire.send(("echo", i, j), got.value, src).wait()
        return samples

    # -- steps ------------------------------------------------------------------------------

    def _compute(self, step: Step, env: dict[str, Any], request: int, stats: dict[str, Any]) -> Any:
        args = self._resolve_all(step.args, env, request, stats)
        kwargs = self._resolve_all(step.kwargs, env, request, stats)
        self._sync()
        start = time.perf_counter()
        if step.op == "call_module":
            value = self.modules[step.target](*args, **kwargs)
        elif step.op == "call_function":
            value = step.target(*args, **kwargs)
        elif step.op == "call_method":
            value = getattr(args[0], step.target)(*args[1:], **kwargs)
        else:
            raise RuntimeError(f"cannot execute top-level node {step.name} ({step.op})")
        self._sync()
        stats["compute_s"][step.name] = time.perf_counter() - start
        return value

    def _resolve_all(self, tree: Any, env: dict[str, Any], request: int, stats: dict[str, Any]) -> Any:
        return map_values(tree, lambda ref: self._resolve(ref, env, request, stats), Ref)

    def _resolve(self, arg: Ref, env: dict[str, Any], request: int, stats: dict[str, Any]) -> Any:
        if arg.name in env:
            return env[arg.name]
        if arg.name in self.constants:
            return self.constants[arg.name]
        src = self.home[arg.name]
        self.progress[2 * self.rank + 1] = src
        got = self.wire.recv((request, arg.name), src)
        self.progress[2 * self.rank + 1] = IDLE
        stats["recv"].append((src, arg.name, got.payload_bytes, got.header_bytes, got.read_s))
        env[arg.name] = got.value
        return got.value

    def _send(self, step: Step, request: int, value: Any) -> list[Sent]:
        return [self.wire.send((request, step.name), value, dst) for dst in step.send_to]

    def _sends(self, name: str) -> bool:
        return self.home.get(name) == self.rank and bool(self.plan.steps[self.index[name]].send_to)

    def _mark(self, step: Step | None) -> None:
        self.current = step
        self.progress[2 * self.rank] = self.index[step.name] if step else IDLE

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, (torch.Tensor, torch.nn.Module)) else value
