"""No process outlives a distributed run: not after a normal run, a rank that raises, a rank
that dies, a timeout, Ctrl-C or SIGTERM, nor a recipe run whose workers fail; and the error
names the rank, its partition and why."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import torch
from torch import nn
from torch.fx import GraphModule, symbolic_trace
from torch.fx.passes.split_module import split_module

from fxflow.distributed import DistributedModule, RunTimeout, Terminated, WorkerFailed, prestart
from fxflow.interrupts import Interrupted
from fixtures_models.faults import Raise, Sleep  # tests/ is on sys.path, here and in the ranks
from process_tree import alive as _alive, descendants as _descendants

PLACEMENT = {0: (1, "cpu"), 1: (2, "cpu")}


class _TwoStages(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def _split() -> GraphModule:
    model = _TwoStages()
    return split_module(symbolic_trace(model), model, lambda node: 0 if node.name in ("first", "relu") else 1)


@pytest.fixture
def no_leftovers():
    """Yields a check: every rank of the run has ended and the test process has no new descendants."""
    prestart()  # the forkserver is a long-lived helper of this process, not a rank
    before = _descendants(os.getpid())

    def check(dm: DistributedModule | list[int]) -> None:
        pids = dm if isinstance(dm, list) else dm.cluster.pids
        assert pids, "the run never started its ranks"
        assert [pid for pid in pids if _alive(pid)] == []
        assert {p for p in _descendants(os.getpid()) - before if _alive(p)} == set()

    return check


def test_normal_run_leaves_nothing(no_leftovers):
    split = _split()
    x = torch.randn(3, 4)
    with DistributedModule(split, PLACEMENT) as dm:
        torch.testing.assert_close(dm(x), split(x))
        assert all(_alive(pid) for pid in dm.cluster.pids)
    no_leftovers(dm)


def test_raising_partition_names_rank_partition_and_reason(no_leftovers):
    split = _split()
    split.submod_1 = Raise()
    dm = DistributedModule(split, PLACEMENT, timeout_s=30)
    with pytest.raises(WorkerFailed, match=r"rank 2 \(partitions \[1\].*in submod_1.*ValueError: injected failure") as err:
        dm(torch.randn(3, 4))
    record = err.value.record
    assert (record["rank"], record["partition"], record["type"]) == (2, 1, "ValueError")
    assert "injected failure" in record["traceback"]
    no_leftovers(dm)
    with pytest.raises(RuntimeError, match="injected failure"):
        dm(torch.randn(3, 4))  # the run is over and says why


def test_killed_rank_is_reported_and_the_rest_end(no_leftovers):
    dm = DistributedModule(_split(), PLACEMENT, timeout_s=30)
    dm.start()
    os.kill(dm.cluster.pids[1], signal.SIGKILL)
    with pytest.raises(WorkerFailed, match=r"rank 1 \(partitions \[0\].*killed by SIGKILL") as err:
        dm(torch.randn(3, 4))
    assert err.value.record["exitcode"] == -signal.SIGKILL
    no_leftovers(dm)


def test_timeout_ends_every_rank_and_says_what_each_was_doing(no_leftovers):
    split = _split()
    split.submod_1 = Sleep(60)
    dm = DistributedModule(split, PLACEMENT, timeout_s=0.5, start_timeout_s=30)
    dm.start()
    start = time.monotonic()
    with pytest.raises(RunTimeout, match=r"rank 2 \(partitions \[1\].*running submod_1") as err:
        dm(torch.randn(3, 4))
    assert time.monotonic() - start < 5
    assert "rank 0 (driver) running output, waiting for a value from rank 2" in str(err.value)
    no_leftovers(dm)


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_interrupt_ends_every_rank(no_leftovers, signum, raised):
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL and signum == signal.SIGTERM:
        pytest.skip("SIGTERM is handled by the test runner here")
    split = _split()
    split.submod_1 = Sleep(60)
    dm = DistributedModule(split, PLACEMENT, timeout_s=30)
    dm.start()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signum))
    timer.start()
    with pytest.raises(raised):
        dm(torch.randn(3, 4))
    timer.join()
    no_leftovers(dm)


def test_parallel_runs_get_their_own_ports(no_leftovers):
    split = _split()
    x = torch.randn(2, 4)
    with DistributedModule(split, PLACEMENT) as first, DistributedModule(split, PLACEMENT) as second:
        assert first.startup["port"] != second.startup["port"]
        torch.testing.assert_close(first(x), second(x))
    no_leftovers(first)
    no_leftovers(second)


def test_recipe_run_whose_worker_fails_ends_in_error_naming_it(no_leftovers, run_recipe, trusted_fixtures):
    run = run_recipe("distributed_chain", "model.module._target_=fixtures_models.faults.ChainFailingInWorkers",
                     "report.pictures=false")
    assert run.summary["status"] == "error"
    error = run.summary["error"]
    assert (error["stage"], error["type"]) == ("execute", "WorkerFailed")
    assert re.search(r"rank 4 \(partitions \[3\] on cpu 'dev_3'\) failed in submod_3 .*injected failure in a worker",
                     error["message"])
    metrics = run.metrics
    assert (metrics["execute.failure.rank"], metrics["execute.failure.partition"]) == (4, 3)
    assert "relu_unless_in_a_worker" in metrics["execute.failure.traceback"]
    no_leftovers([metrics[f"execute.ranks.{rank}.pid"] for rank in range(5)])


def test_interrupted_recipe_run_leaves_no_process(no_leftovers, run_recipe, trusted_fixtures):
    before = _descendants(os.getpid())
    ranks: set[int] = set()

    def interrupt_once_started() -> None:  # Ctrl-C once the driver and four workers are up
        deadline = time.monotonic() + 30
        while len(ranks) < 5 and time.monotonic() < deadline:
            ranks.update(p for p in _descendants(os.getpid()) - before if _alive(p))
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_started)
    watcher.start()
    with pytest.raises(Interrupted):  # the run records `interrupted`, then stops
        run_recipe("distributed_chain", "model.module._target_=fixtures_models.faults.ChainStallingInWorkers",
                   "report.pictures=false")
    watcher.join()
    assert len(ranks) == 5
    no_leftovers(sorted(ranks))
