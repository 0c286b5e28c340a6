"""Stages that fail on purpose, put in place of a partition to check that a distributed run ends
cleanly. `Raise` and `Sleep` are plain modules (pickled by reference), because a GraphModule is
re-traced when it is unpickled, which would run an unwrapped fault at load time instead of at
call time; `ChainFailingInWorkers` and `ChainStallingInWorkers` are whole models whose fault is
a wrapped function."""

import time

import torch

from fxflow.models.staged import MLPChain


class Raise(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("injected failure")


class Sleep(torch.nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def _in_a_worker() -> bool:
    """Whether this process joined a process group: true in distributed workers, false where the
    model is traced and checked."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


# Wrapped, so each stays one call node through tracing, partitioning and the re-trace a
# GraphModule goes through when a worker unpickles it, and runs only when a worker calls it.
@torch.fx.wrap
def relu_unless_in_a_worker(x: torch.Tensor) -> torch.Tensor:
    if _in_a_worker():
        raise RuntimeError("injected failure in a worker")
    return torch.relu(x)


@torch.fx.wrap
def relu_slowly_in_a_worker(x: torch.Tensor) -> torch.Tensor:
    if _in_a_worker():
        time.sleep(60)
    return torch.relu(x)


class _FailingReLU(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_unless_in_a_worker(x)


class _StallingReLU(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_slowly_in_a_worker(x)


class ChainFailingInWorkers(MLPChain):
    """MLPChain whose last ReLU raises when a worker runs it: same sizes, so the same four stages."""

    def __init__(self, width: int = 64, depth: int = 8):
        super().__init__(width, depth)
        self.blocks[-1] = _FailingReLU()


class ChainStallingInWorkers(MLPChain):
    """MLPChain whose last ReLU sleeps a minute when a worker runs it."""

    def __init__(self, width: int = 64, depth: int = 8):
        super().__init__(width, depth)
        self.blocks[-1] = _StallingReLU()
