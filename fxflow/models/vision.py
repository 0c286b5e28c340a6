"""The image classifiers of test_optimize_for_inference_cpu_torchvision, by architecture name.

ResNet-18, ResNet-50 and ResNeXt-50 are built in-repo (`fxflow.models.resnet`, torchvision's
architecture and module names) and always available; the others come from torchvision when it is
installed (`pip install 'fxflow[vision]'`). Their model configs state `requires.packages:
[torchvision]`, so a run without it is reported `skipped`, not failed.

    classifier("resnet18")                                   # in-repo
    classifier("densenet121", source="torchvision")          # needs torchvision
    classifier("resnet18", warmup_shape=[3, 3, 64, 64])      # BatchNorm statistics moved off their defaults

`warmup_shape` runs one train-mode forward on a random batch of that shape, as the torch test does
before switching to eval: the BatchNorm running statistics then differ from their initial 0/1,
so folding them into the convolutions is a real computation rather than a near-identity.
"""

from __future__ import annotations

import importlib
from typing import Literal

import torch
from torch import nn

from fxflow.config.targets import model_factory
from fxflow.models.resnet import FACTORIES
from fxflow.requirements import RequirementMissing

TORCHVISION_ONLY = ("densenet121", "shufflenet_v2_x1_0", "vgg16", "mobilenet_v2", "mnasnet1_0")


@model_factory
def classifier(arch: str, source: Literal["fxflow", "torchvision"] = "fxflow",
               warmup_shape: list[int] | None = None) -> nn.Module:
    """Build `arch` from the in-repo definitions or torchvision's; see the module docstring."""
    model = _torchvision(arch) if source == "torchvision" else _in_repo(arch)
    if warmup_shape:
        model.train()
        with torch.no_grad():
            model(torch.randn(*warmup_shape))
    return model


def _in_repo(arch: str) -> nn.Module:
    if arch not in FACTORIES:
        hint = " (torchvision only: set source: torchvision)" if arch in TORCHVISION_ONLY else ""
        raise ValueError(f"no in-repo architecture '{arch}'{hint}; in-repo: {', '.join(FACTORIES)}")
    return FACTORIES[arch]()


def _torchvision(arch: str) -> nn.Module:
    try:
        models = importlib.import_module("torchvision.models")
    except ImportError as exc:
        raise RequirementMissing(f"torchvision is not installed (needed for {arch})") from exc
    factory = getattr(models, arch, None)
    if factory is None:
        raise ValueError(f"torchvision.models has no architecture '{arch}'")
    return factory()
