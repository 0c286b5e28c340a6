"""Models that exist only to exercise failure paths in end-to-end tests."""

import torch


class DataDependent(torch.nn.Module):
    """Control flow on a tensor value: symbolic tracing cannot follow it."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.sum() > 0:
            return a * 2
        return a
