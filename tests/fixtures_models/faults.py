"""Stages that fail on purpose, put in place of a partition to check that a distributed run ends
cleanly. They are plain modules (pickled by reference), because a GraphModule is re-traced when
it is unpickled, which would run the fault at load time instead of at call time."""

import time

import torch


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
