"""The test suite's compose cache gives exactly what a full compose gives."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_cached
from fxflow.compose import compose_recipe

CASES = [
    ("partition_latency", ["devices=two_gpu", "latency@transforms.partition.latency_model=size_unit",
                           "transforms.partition.mode=size_based", "+model.inputs.z={shape:[2]}"]),
    ("replace_target_nodes_with", ["~model.inputs.b", "+model.module.args=[touch,/tmp/x]", "seed=${nope}",
                                   "equivalence=every_stage", "equivalence.fresh_inputs=0"]),
]

@pytest.mark.parametrize("recipe,overrides", CASES, ids=[" ".join(c[1]) or c[0] for c in CASES])
def test_cached_compose_equals_full_compose(recipe, overrides):
    cfg, files = compose_cached(recipe, overrides)
    full, full_files = compose_recipe(recipe, overrides)
    assert OmegaConf.to_container(cfg, resolve=False) == OmegaConf.to_container(full, resolve=False)
    assert list(OmegaConf.to_container(cfg, resolve=False)) == list(OmegaConf.to_container(full, resolve=False))
    assert files == full_files


def test_cached_compose_raises_what_compose_raises():
    with pytest.raises(Exception) as cached:
        compose_cached("sparse_nn", ["devices.dev_9.mem_bytes=1"])
    with pytest.raises(Exception) as full:
        compose_recipe("sparse_nn", ["devices.dev_9.mem_bytes=1"])
    assert type(cached.value) is type(full.value) and str(cached.value) == str(full.value)
