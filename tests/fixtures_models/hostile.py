"""Models that misbehave in their forward: one that never returns (in tracing, or only when run
eagerly, or while swallowing every exception), and one that raises from its own code."""

import time

import torch
from torch.fx._symbolic_trace import is_fx_tracing


class SpinsForever(torch.nn.Module):
    """A forward that never returns: the trace itself hangs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            time.sleep(0.01)


class SpinsWhenEager(torch.nn.Module):
    """Traces at once, hangs when run eagerly: the equivalence check's reference call hangs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while not is_fx_tracing():
            time.sleep(0.01)
        return torch.relu(x)


class SwallowsEverything(torch.nn.Module):
    """A forward that loops for ever and swallows every exception raised inside it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001 - the point
                pass


class RaisesInForward(torch.nn.Module):
    """A forward whose own code raises, whatever the inputs (the message holds rich markup)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("model bug [/] in forward")


class TakesFourFeatures(torch.nn.Module):
    """nn.Linear(4, 2): inputs of another width do not fit it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class UntraceableAndSpinsWhenEager(torch.nn.Module):
    """Symbolic tracing fails at once (control flow on a value); run eagerly, it never returns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_fx_tracing():
            if x.sum() > 0:  # a Proxy cannot be a bool: tracing fails here
                return x
        while True:
            time.sleep(0.01)
