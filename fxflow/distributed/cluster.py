"""The caller's side of a run: start one process per rank, command them, and make sure they end.

Processes come from a multiprocessing *forkserver* that has imported torch once (`PRELOAD`), so
a rank starts in tens of milliseconds instead of the ~2 s a fresh torch import costs; the first
run in a process pays for starting the forkserver (`prestart()` pays it up front). 'spawn'
works too and imports torch in every rank, in parallel.

Ranks rendezvous over a TCPStore that the caller hosts on `host` (127.0.0.1) with a port the
operating system picks (port 0), so parallel runs never collide. The caller waits for replies
on the control pipes and the process sentinels together, with a deadline per command; it
never blocks inside torch.distributed, so Ctrl-C and SIGTERM reach it at once. Whatever ends
a command early (a rank's exception, a rank that died, the deadline, Ctrl-C, SIGTERM) ends
every rank: terminate, join with a deadline, kill. Ranks also exit by themselves when the
caller's process disappears (a lifeline pipe closes).

    cluster = Cluster(ranks, timeout_s=60)
    cluster.start(make_setup)           # make_setup(rank, store_port) -> RankSetup
    replies = cluster.command("run", {0: ..., 1: ...})
    cluster.close()
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import threading
import time
import weakref
from contextlib import contextmanager
from datetime import timedelta
from multiprocessing import forkserver
from multiprocessing.connection import wait as wait_any
from typing import Any, Callable, Iterator

import torch.distributed as dist

from fxflow.distributed.worker import IDLE, PRELOAD, RankSetup, worker_main

START_METHODS = ("forkserver", "spawn")
_GRACE_S = 2.0  # how long ranks get to end after SIGTERM before SIGKILL
_SECONDARY = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


class WorkerFailed(RuntimeError):
    """A rank raised or died. `record` holds rank, partitions, device, step, type, message,
    traceback (the rank's own), exit code, and any other ranks' failures."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


class RunTimeout(TimeoutError):
    """A command did not finish within the deadline; `record` says what each busy rank was doing."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the caller while it waited on its ranks (they have been ended)."""


_warm = False


def prestart() -> float:
    """Start the forkserver with torch imported and fork one process from it; seconds spent
    (zero once done in this process). Later runs then start ranks in milliseconds."""
    global _warm
    if _warm:
        return 0.0
    start = time.perf_counter()
    forkserver.set_forkserver_preload(list(PRELOAD))
    probe = mp.get_context("forkserver").Process(target=_noop, daemon=True)
    probe.start()
    probe.join(60)
    _warm = True
    return time.perf_counter() - start


def _noop() -> None:
    pass


class Cluster:
    """Processes for ranks 0..len(ranks)-1; `ranks[r]` describes rank r for error messages
    (`device`, `device_name`, `partitions`); `steps` names the plan's steps by index."""

    def __init__(self, ranks: list[dict[str, Any]], steps: list[str], *, timeout_s: float = 60.0,
                 start_timeout_s: float | None = None, start_method: str = "forkserver", host: str = "127.0.0.1"):
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
        if timeout_s <= 0 or (start_timeout_s is not None and start_timeout_s <= 0):
            raise ValueError(f"timeouts must be positive, got {timeout_s} and {start_timeout_s}")
        self.ranks = ranks
        self.steps = steps
        self.timeout_s = float(timeout_s)
        self.start_timeout_s = float(start_timeout_s or timeout_s)
        self.start_method = start_method
        self.host = host
        self.failure: dict[str, Any] | None = None
        self.pids: list[int] = []
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self._lifeline: Any = None
        self._store: Any = None
        self._progress: Any = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _end_all, self._procs)

    @property
    def alive(self) -> bool:
        return bool(self._procs) and not self._closed

    def start(self, make_setup: Callable[[int, int], RankSetup]) -> dict[str, Any]:
        """Start every rank, ship its setup, wait until all joined the process group; timings."""
        if self._procs:
            raise RuntimeError("these ranks were started already; a Cluster starts once")
        begin = time.perf_counter()
        forkserver_s = prestart() if self.start_method == "forkserver" else 0.0
        ctx = mp.get_context(self.start_method)
        self._store = dist.TCPStore(self.host, 0, is_master=True, wait_for_workers=False,
                                    timeout=timedelta(seconds=max(self.timeout_s, self.start_timeout_s)))
        self._progress = ctx.Array("i", [IDLE] * (2 * len(self.ranks)), lock=False)
        lifeline_child, self._lifeline = ctx.Pipe(duplex=False)
        spawn_begin = time.perf_counter()
        try:
            for rank in range(len(self.ranks)):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker_main, args=(rank, child, lifeline_child, self._progress),
                                   name=f"fxflow-rank-{rank}", daemon=True)
                proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
        except BaseException:
            self._end()
            raise
        finally:
            lifeline_child.close()
        hello = self._await("hello", "start-up")
        self.pids = [hello[r]["pid"] for r in range(len(self.ranks))]
        spawned = time.perf_counter()
        try:
            for rank in range(len(self.ranks)):
                self._post(rank, pickle.dumps(make_setup(rank, self._store.port)))
        except BaseException:  # e.g. a module that does not pickle: the ranks must not wait for it
            self._end()
            raise
        ready = self._await("ready", "start-up")
        end = time.perf_counter()
        return {
            "start_method": self.start_method,
            "forkserver_s": forkserver_s,
            "processes_s": spawned - spawn_begin,
            "setup_s": end - spawned,
            "load_s": max(r["load_s"] for r in ready.values()),
            "rendezvous_s": max(r["rendezvous_s"] for r in ready.values()),
            "total_s": end - begin,
            "port": self._store.port,
        }

    def command(self, name: str, args: dict[int, Any]) -> dict[int, Any]:
        """Send command `name` to every rank (with its own argument) and wait for all replies."""
        if not self.alive:
            reason = self.failure["message"] if self.failure else "it was closed"
            raise RuntimeError(f"the ranks of this run have ended: {reason}")
        for rank in range(len(self.ranks)):
            self._post(rank, pickle.dumps((name, args.get(rank))))
        return self._await("ok", name)

    def close(self) -> None:
        """Ask every rank to stop, give them a moment, then end whatever is left."""
        if self._closed or not self._procs:
            self._closed = True
            return
        for rank in range(len(self._procs)):
            self._post(rank, pickle.dumps(("stop", None)))
        deadline = time.monotonic() + _GRACE_S
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        self._end()

    # -- waiting ----------------------------------------------------------------------------

    def _await(self, kind: str, during: str) -> dict[int, Any]:
        pending = set(range(len(self._procs)))
        replies: dict[int, Any] = {}
        failures: list[dict[str, Any]] = []
        limit_s = self.start_timeout_s if during == "start-up" else self.timeout_s
        deadline = time.monotonic() + limit_s
        settle_until = None
        with _sigterm_raises():
            try:
                while pending:
                    now = time.monotonic()
                    if failures and (settle_until is None or now >= settle_until or not _all_secondary(failures)):
                        break
                    if now >= deadline:
                        raise self._timed_out(pending, during, limit_s)
                    waitables = {self._conns[r]: r for r in pending}
                    waitables.update({self._procs[r].sentinel: r for r in pending})
                    limit = min(deadline, settle_until or deadline) - now
                    for ready in wait_any(list(waitables), timeout=max(0.0, min(limit, 0.5))):
                        rank = waitables[ready]
                        if rank not in pending:
                            continue
                        message = self._read(rank)
                        if message == "nothing":
                            continue
                        pending.discard(rank)
                        if message is None:
                            failures.append(self._died(rank, during))
                        elif message[0] == "error":
                            failures.append(self._raised(rank, message[1], during))
                        elif message[0] == kind:
                            replies[rank] = message[1]
                        else:
                            failures.append(self._raised(rank, {"type": "ProtocolError", "message": f"expected {kind!r}, got {message[0]!r}"}, during))
                    if failures and settle_until is None:
                        # a rank that lost its peer reports that first; give the cause a moment to show
                        settle_until = time.monotonic() + 0.5
                if failures:
                    raise self._failed(failures, during)
            except BaseException:
                self._end()
                raise
        return replies

    def _read(self, rank: int) -> tuple[str, Any] | str | None:
        """The rank's next message, None if it is gone, "nothing" on a spurious wake-up."""
        conn = self._conns[rank]
        try:
            if conn.poll(0):
                return pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            pass
        return "nothing" if self._procs[rank].is_alive() else None

    def _post(self, rank: int, data: bytes) -> None:
        try:
            self._conns[rank].send_bytes(data)
        except OSError:
            pass  # the rank is gone; waiting on it reports how it ended

    # -- failures ---------------------------------------------------------------------------

    def _where(self, rank: int) -> str:
        info = self.ranks[rank]
        if info.get("role", "driver" if rank == 0 else "worker") == "driver":
            return f"rank {rank} (driver)"
        name = f" '{info['device_name']}'" if info.get("device_name") else ""
        return f"rank {rank} (partitions {info.get('partitions', [])} on {info.get('device', '?')}{name})"

    def _record(self, rank: int, during: str) -> dict[str, Any]:
        info = self.ranks[rank]
        return {"rank": rank, "pid": self.pids[rank] if rank < len(self.pids) else None, "device": info.get("device"),
                "device_name": info.get("device_name"), "partitions": info.get("partitions", []), "during": during}

    def _raised(self, rank: int, report: dict[str, Any], during: str) -> dict[str, Any]:
        step = f" in {report['step']}" if report.get("step") else ""
        record = {**self._record(rank, during), "exitcode": None, "step": None, "partition": None, "traceback": None, **report}
        record["error"] = f"{report['type']}: {report['message']}"
        record["message"] = f"{self._where(rank)} failed{step} during {during}: {record['error']}"
        return record

    def _died(self, rank: int, during: str) -> dict[str, Any]:
        proc = self._procs[rank]
        proc.join(1.0)
        code = proc.exitcode
        how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
        record = {**self._record(rank, during), "exitcode": code, "type": "WorkerDied", "step": None, "partition": None, "traceback": None}
        record["error"] = f"WorkerDied: {how}"
        record["message"] = f"{self._where(rank)} {how} during {during}"
        return record

    def _failed(self, failures: list[dict[str, Any]], during: str) -> WorkerFailed:
        failures.sort(key=lambda f: (_secondary(f), f["type"] != "WorkerDied"))
        record = dict(failures[0], others=failures[1:])
        self.failure = record
        return WorkerFailed(record["message"], record)

    def _timed_out(self, pending: set[int], during: str, limit_s: float) -> RunTimeout:
        busy = []
        for rank in sorted(pending):
            step, waiting = self._progress[2 * rank], self._progress[2 * rank + 1]
            doing = f"running {self.steps[step]}" if step != IDLE else "not running a step"
            if waiting != IDLE:
                doing += f", waiting for a value from rank {waiting}"
            busy.append({"rank": rank, "doing": doing})
        text = "; ".join(f"{self._where(b['rank'])} {b['doing']}" for b in busy)
        message = f"no reply within {limit_s:g} s during {during}: {text}"
        self.failure = {"type": "RunTimeout", "message": message, "during": during, "busy": busy}
        return RunTimeout(message, self.failure)

    def _end(self) -> None:
        self._closed = True
        _end_all(self._procs)
        for conn in self._conns:
            conn.close()
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
        self._store = None


def _end_all(procs: list[Any]) -> None:
    """Terminate, join with a deadline, kill what is left, join again: no rank survives."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + _GRACE_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(_GRACE_S)


def _secondary(failure: dict[str, Any]) -> bool:
    return any(s in str(failure.get("message")) for s in _SECONDARY)


def _all_secondary(failures: list[dict[str, Any]]) -> bool:
    return all(_secondary(f) for f in failures)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While waiting, SIGTERM raises Terminated (so the ranks get ended), unless the
    application already handles SIGTERM or this is not the main thread."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"{signal.Signals(signum).name} while waiting on the ranks")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
