"""The in-repo model definitions match the architectures they stand in for."""

from __future__ import annotations

import pytest
import torch

from fxflow.models import resnet

# Parameter counts of torchvision's definitions (torchvision.models.<name>().parameters()).
TORCHVISION_PARAMETERS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "resnext50_32x4d": 25_028_904}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMETERS))
def test_resnet_parameter_count_matches_torchvision(name):
    model = resnet.FACTORIES[name]()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMETERS[name]


def test_resnet18_module_names_and_output():
    model = resnet.resnet18().eval()
    names = dict(model.named_modules())
    for name in ("conv1", "bn1", "maxpool", "layer1.0.conv1", "layer2.0.downsample.0", "layer4.1.bn2", "avgpool", "fc"):
        assert name in names, name
    assert "layer1.0.downsample" not in names  # torchvision's first stage has no downsample
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
