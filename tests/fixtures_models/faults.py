"""Stages that fail on purpose, put in place of a partition to check that a distributed run ends
cleanly. `Raise` and `Sleep` are plain modules (pickled by reference), because a GraphModule is
re-traced when it is unpickled, which would run an unwrapped fault at load time instead of at
call time; `ChainFailingInWorkers` is a whole model whose fault is a wrapped function."""

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


@torch.fx.wrap
def relu_unless_in_a_worker(x: torch.Tensor) -> torch.Tensor:
    """ReLU where the model is traced and checked; raises inside a distributed worker (a process
    that joined a process group). Wrapped, so it stays one call node through tracing, partitioning
    and the re-trace a GraphModule goes through when a worker unpickles it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        raise RuntimeError("injected failure in a worker")
    return torch.relu(x)


class _FailingReLU(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_unless_in_a_worker(x)


class ChainFailingInWorkers(MLPChain):
    """MLPChain whose last ReLU raises when a worker runs it: same sizes, so the same four stages."""

    def __init__(self, width: int = 64, depth: int = 8):
        super().__init__(width, depth)
        self.blocks[-1] = _FailingReLU()
