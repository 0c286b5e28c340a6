"""Models people deploy, built from numbers with random weights: Hugging Face transformers' GPT-2,
BERT and Llama (fxflow.models.hf). transformers is an optional extra for users (fxflow[hf]) and
part of the test extra, so CI runs the recipes (tests/test_recipes.py) and checks the wrappers
against transformers' own models below; without it a recipe is skipped with one clear line, and a
config cannot reach transformers' own classes. benchmarks/real_models.py gives the full-size figures."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from omegaconf import OmegaConf

from conftest import HF_MODELS
from fxflow.config.targets import TargetPolicy, TargetRefused
from fxflow.paths import conf_dir
from fxflow.recipes import recipe_files
from fxflow.requirements import RequirementMissing

HF_RECIPES = ["partition_hf_gpt2", "partition_hf_bert", "partition_hf_llama"]
TINY = {"layers": 1, "hidden": 16, "heads": 2, "vocab": 64, "context": 16}


def test_without_transformers_a_recipe_is_skipped_with_one_line(run_recipe, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    run = run_recipe("partition_hf_llama")
    assert run.summary["status"] == "skipped", run.summary
    assert run.summary["skipped"] == "package 'transformers' is not installed"


@pytest.mark.parametrize("recipe", HF_RECIPES)
def test_each_recipe_builds_through_a_model_config_that_requires_transformers(recipe):
    """What skipped partition_hf_llama above is its model config's `requires`: every HF recipe has one."""
    model = next(e["override /model"] for e in OmegaConf.to_container(OmegaConf.load(recipe_files()[recipe]))["defaults"]
                 if isinstance(e, dict) and "override /model" in e)
    config = OmegaConf.load(conf_dir() / "model" / f"{model}.yaml")
    assert config.module._target_.startswith("fxflow.models.hf.") and list(config.requires.packages) == ["transformers"]


def test_without_transformers_a_builder_raises_requirement_missing(monkeypatch):
    from fxflow.models import hf

    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(RequirementMissing, match=r"transformers is not installed \(needed for gpt2\)"):
        hf.gpt2(**TINY)


@pytest.mark.parametrize("path", ["transformers.GPT2LMHeadModel", "transformers.GPT2LMHeadModel.from_pretrained",
                                  "transformers.models.bert.modeling_bert.BertModel"])
def test_a_config_cannot_name_transformers_itself(path):
    """Only fxflow's builders, which take numbers, construct these models: no config reaches
    from_pretrained (files, the hub) unless a user trusts transformers outside the recipe."""
    with pytest.raises(TargetRefused, match="not from a package fxflow builds from"):
        TargetPolicy().model(path)
    assert TargetPolicy().model("fxflow.models.hf.gpt2").kind == "factory"


@HF_MODELS
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_decoder_with_its_causal_mask_computes_the_models_own_logits(name):
    """The wrapper hands the decoder a causal mask of its own (so export sees no vmap); the logits
    must be those transformers computes with its own mask (transformers is in the test extra)."""
    from fxflow.models import hf

    torch.manual_seed(0)
    extra = {"kv_heads": 1, "intermediate": 32} if name == "llama" else {}
    wrapped = getattr(hf, name)(**TINY, **extra)
    tokens = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        own = wrapped.model(input_ids=tokens).logits
        torch.testing.assert_close(wrapped(tokens), own, rtol=1e-5, atol=1e-5)
        shifted = tokens.clone()
        shifted[:, -1] = (shifted[:, -1] + 1) % 64  # causal: changing the last token leaves earlier logits alone
        torch.testing.assert_close(wrapped(shifted)[:, :-1], own[:, :-1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(wrapped(shifted)[:, -1], own[:, -1])


@pytest.mark.parametrize("layers, heads", [(1, 1), (3, 4)])
def test_mini_gpt_traces_to_the_same_logits_and_is_causal(layers, heads):
    """MiniGPT (no extra package): its causal mask, checked on the traced module."""
    from torch.fx import symbolic_trace

    from fxflow.models.gpt import MiniGPT

    torch.manual_seed(0)
    model = MiniGPT(vocab=64, context=8, dim=16, heads=heads, layers=layers).eval()
    tokens = torch.randint(0, 64, (3, 8))
    gm = symbolic_trace(model)
    assert torch.equal(gm(tokens), model(tokens))
    assert sum(n.op == "call_module" and n.target.endswith("attn.qkv") for n in gm.graph.nodes) == layers
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 64  # changing the last token leaves earlier logits as they were
    assert torch.equal(gm(changed)[:, :-1], gm(tokens)[:, :-1])
    assert not torch.equal(gm(changed)[:, -1], gm(tokens)[:, -1])


def test_mini_gpt_refuses_heads_that_do_not_divide_the_width():
    from fxflow.models.gpt import MiniGPT

    with pytest.raises(ValueError, match="multiple of heads"):
        MiniGPT(dim=30, heads=4)
