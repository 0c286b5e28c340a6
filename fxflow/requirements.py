"""What a run needs from the machine (a package, MKLDNN, CUDA). A run whose needs are not met
ends `skipped` with the reason, never `error`: the recipe is fine, the machine lacks something."""

from __future__ import annotations

import importlib.util

import torch

from fxflow.config.schema import Requirements


class RequirementMissing(Exception):
    """Raised by any step that finds the machine lacks what it needs; the run is skipped."""


def unmet(requirements: Requirements) -> list[str]:
    """Each unmet requirement in words ([] when all are met)."""
    missing = [f"package '{name}' is not installed" for name in requirements.packages
               if importlib.util.find_spec(name) is None]
    if requirements.mkldnn and not (torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()):
        missing.append("MKLDNN is not available in this torch build")
    if requirements.cuda and not torch.cuda.is_available():
        missing.append("no CUDA device is available")
    return missing
