"""A corpus of malformed configs and hostile targets, run as a user runs them (compose + run_job,
in-process). Every case must end the same way:

- status `error`, never `passed`, with one message that names the config key;
- the message prints on a terminal as written (no markup lost) and no traceback appears;
- nothing is created outside the run directory (the working folder stays empty);
- no process is started (subprocess and os spawners are replaced by recorders);
- no module outside the trusted packages is imported (a planted package writes a marker on import).

The corpus is the product of dangerous callables and the keys that name a callable, plus
hand-written malformed values, plus edits only a recipe file can make, plus property-based
fuzzing of typed keys with out-of-range values (hypothesis).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from rich.console import Console

from conftest import compose_cached
from fxflow.pipeline import run_job
from fxflow.reports.console import print_outcome

PLANTED = "planted_evil"
PLANTED_SOURCE = '''
import os, pathlib
pathlib.Path(os.environ["PLANTED_MARKER"]).write_text("imported")
import torch
from fxflow.transforms.base import Transform
class Model(torch.nn.Module):
    def forward(self, a, b):
        return a + b
class Step(Transform):
    def apply(self, gm, ctx):
        return gm
def function(a, b):
    return a + b
'''

# Callables a config must never reach: processes, files, code loading, network, interpreter,
# torch's loaders and hubs, fxflow's own entry points, re-exports, and an untrusted package.
DANGEROUS = [
    "subprocess.Popen", "subprocess.run", "subprocess.check_output", "os.system", "os.popen", "os.remove",
    "os.execv", "shutil.rmtree", "shutil.copy", "builtins.open", "builtins.exec", "builtins.eval",
    "builtins.__import__", "importlib.import_module", "pathlib.Path.write_text", "io.open", "tempfile.mkdtemp",
    "socket.create_connection", "urllib.request.urlopen", "pickle.loads", "ctypes.CDLL", "runpy.run_path",
    "multiprocessing.Process", "sys.exit", "signal.raise_signal", "torch.load", "torch.hub.load", "torch.save",
    "torch.utils.cpp_extension.load", "torch.jit.load", "torch.os.system", "torch.builtins.open",
    "fxflow.models.recommendation.torch.load", "fxflow.cli.main", "fxflow.pipeline.run_job",
    f"{PLANTED}.Model", f"{PLANTED}.Step", f"{PLANTED}.function", "operator.methodcaller", "os",
]
# (recipe, the override key naming a callable, the key the message must name)
CALLABLE_KEYS = [
    ("replace_target_nodes_with", "model.module._target_", "model.module._target_"),
    ("replace_target_nodes_with", "equivalence.reference._target_", "equivalence.reference._target_"),
    ("replace_target_nodes_with", "tracer._target_", "tracer._target_"),
    ("replace_target_nodes_with", "transforms.replace._target_", "transforms.replace._target_"),
    ("replace_target_nodes_with", "transforms.replace.new_target", "transforms.replace.new_target"),
]
# Each callable against the model key, and against one other key in turn.
TARGET_CASES = [(recipe, [f"{key}={target}"], named) for index, target in enumerate(DANGEROUS)
                for recipe, key, named in (CALLABLE_KEYS[0], CALLABLE_KEYS[1 + index % (len(CALLABLE_KEYS) - 1)])]

# (recipe, overrides, the key the message names)
MALFORMED = [
    # hostile calls with arguments, nested targets, Hydra's instantiate keys
    ("replace_target_nodes_with", ["model.module._target_=subprocess.Popen", "+model.module.args=[touch,MARK]"],
     "model.module._target_"),
    ("replace_target_nodes_with", ["+model.module.layer={_target_:os.system,command:touch MARK}"], "model.module.layer"),
    ("replace_target_nodes_with", ["+model.module._args_=[touch,MARK]"], "model.module._args_"),
    ("replace_target_nodes_with", ["+model.module._partial_=true"], "model.module._partial_"),
    ("replace_target_nodes_with", ["+equivalence.reference._args_=[1]"], "equivalence.reference._args_"),
    ("replace_target_nodes_with", ["+equivalence.reference.x=1"], "equivalence.reference"),
    ("replace_target_nodes_with", ["+transforms.replace._partial_=true"], "transforms.replace._partial_"),
    ("replace_target_nodes_with", ["+transforms.replace._recursive_=true"], "transforms.replace._recursive_"),
    ("replace_target_nodes_with", ["+description={_target_:os.system}"], "description"),
    ("replace_target_nodes_with", ["+report.extra={_target_:builtins.open}"], "report.extra"),
    ("replace_target_nodes_with", ["+expect.metrics.replace.replaced={_target_:os.system}"],
     "expect.metrics.replace.replaced"),
    ("partition_latency", ["+transforms.partition.node_to_partition={a:{_target_:os.system}}"],
     "transforms.partition.node_to_partition.a"),
    ("partition_latency", ["transforms.partition.latency_model._target_=os.system"],
     "transforms.partition.latency_model._target_"),
    ("partition_latency", ["transforms.partition.latency_model._target_=fxflow.tracers.SymbolicTracer"],
     "transforms.partition.latency_model._target_"),
    ("replace_target_nodes_with", ["transforms.replace.new_op=call_method", "transforms.replace.new_target=__class__"],
     "transforms.replace.new_target"),
    ("replace_target_nodes_with", ["transforms.replace.old_op=call_module", "transforms.replace.old_target=a/b"],
     "transforms.replace.old_target"),
    ("replace_target_nodes_with", ["transforms.replace.new_target=operator.attrgetter"], "transforms.replace.new_target"),
    ("replace_target_nodes_with", ["transforms.replace.new_target=math.nosuchthing"], "transforms.replace.new_target"),
    # model targets that are not models
    ("replace_target_nodes_with", ["model.module._target_=fxflow.models.partition_examples.Nope"],
     "model.module._target_"),
    ("replace_target_nodes_with", ["model.module._target_=notdotted"], "model.module._target_"),
    ("replace_target_nodes_with", ["model.module._target_=fxflow.models.partition_examples._WithLinear"],
     "model.module._target_"),
    ("replace_target_nodes_with", ["model.module._target_=torch.nn.functional.relu"], "model.module._target_"),
    ("replace_target_nodes_with", ["model.module._target_=fxflow.models"], "model.module._target_"),
    ("replace_target_nodes_with", ["model.module._target_=torch.nn.utils.parametrize.cached"], "model.module._target_"),
    ("replace_target_nodes_with", ["+model.module.hidden=4"], "model.module"),
    ("replace_target_nodes_with", ["+model.train=sometimes"], "model.train"),
    ("replace_target_nodes_with", ["+model.bogus=1"], "model.bogus"),
    # inputs
    ("partition_latency", ["model.inputs.a.shape=[3,5]"], "model.inputs"),
    ("partition_latency", ["model.inputs.a.shape=[7]"], "model.inputs"),
    ("partition_latency", ["model.inputs.a.shape=[100000,100000]"], "model.inputs.a.shape"),
    ("partition_latency", ["model.inputs.a.shape=[-1,4]"], "model.inputs.a.shape"),
    ("partition_latency", ["+model.inputs.a.dtype=complex64"], "model.inputs.a.dtype"),
    ("partition_latency", ["model.inputs.a.dist=normal"], "model.inputs.a.dist"),
    ("partition_latency", ["+model.inputs.a.dtype=int8", "model.inputs.a.dist=randint", "+model.inputs.a.high=1000"],
     "model.inputs.a.high"),
    ("partition_latency", ["+model.inputs.c={shape:[4]}"], "model.inputs.c"),
    ("partition_latency", ["~model.inputs.a"], "model.inputs.a"),
    ("partition_latency", ["+model.inputs.a.value=3"], "model.inputs.a"),
    # devices
    ("partition_latency", ["devices.dev_1.logical_id=0"], "devices.dev_1.logical_id"),
    ("partition_latency", ["devices.dev_0.logical_id=-1"], "devices.dev_0.logical_id"),
    ("partition_latency", ["devices.dev_0.logical_id=5000"], "devices.dev_0.logical_id"),
    ("partition_latency", ["devices.dev_0.mem_bytes=2PB"], "devices.dev_0.mem_bytes"),
    ("partition_latency", ["devices.dev_0.mem_bytes=1e300"], "devices.dev_0.mem_bytes"),
    ("partition_latency", ["devices.dev_0.mem_bytes=0"], "devices.dev_0.mem_bytes"),
    ("partition_latency", ["devices.dev_0.mem_bytes=true"], "devices.dev_0.mem_bytes"),
    ("partition_latency", ["+devices.dev_0.name='[bold]x[/]'"], "devices.dev_0.name"),
    ("partition_latency", ["+devices.dev_0.link_bytes_per_sec=0"], "devices.dev_0.link_bytes_per_sec"),
    ("partition_latency", ["+devices.dev_0.link_bytes_per_sec=.inf"], "devices.dev_0.link_bytes_per_sec"),
    ("partition_latency", ["+devices.dev_0.torch_device='cuda:0; rm -rf /'"], "devices.dev_0.torch_device"),
    ("partition_latency", ["+devices.dev_0.bogus=1"], "devices.dev_0.bogus"),
    ("partition_latency", ["+devices.dev_2={mem_bytes:100,logical_id:2,name:dev_0}"], "devices.dev_2.name"),
    ("partition_latency", ["devices=none"], "devices"),
    # tracer
    ("partition_latency", ["+tracer.concrete_args={zz:1}"], "tracer.concrete_args.zz"),
    ("partition_latency", ["tracer=leaf_modules"], "tracer.leaf_modules"),
    ("partition_latency", ["tracer.leaf_modules=[os.system]"], "tracer.leaf_modules"),
    ("partition_latency", ["tracer.leaf_modules=[torch.nn.Parameter]"], "tracer.leaf_modules"),
    ("partition_latency", [f"tracer.leaf_modules=[{PLANTED}.Model]"], "tracer.leaf_modules"),
    ("partition_latency", ["+tracer.bogus=1"], "tracer.bogus"),
    # transforms
    ("partition_latency", ["transforms.partition.mode=fast"], "transforms.partition.mode"),
    ("partition_latency", ["transforms.partition.transfer_rate_bytes_per_sec=0"],
     "transforms.partition.transfer_rate_bytes_per_sec"),
    ("partition_latency", ["transforms.partition.transfer_rate_bytes_per_sec=-1"],
     "transforms.partition.transfer_rate_bytes_per_sec"),
    ("partition_latency", ["transforms.partition.transfer_rate_bytes_per_sec=.nan"],
     "transforms.partition.transfer_rate_bytes_per_sec"),
    ("partition_latency", ["~transforms.size_nodes"], "transforms.partition"),
    ("partition_latency", ["+transforms.partition.mod=x"], "transforms.partition.mod"),
    # checks and expectations
    ("replace_target_nodes_with", ["equivalence.stages=[]"], "equivalence.stages"),
    ("replace_target_nodes_with", ["equivalence.stages=[]", "+equivalence.skip_reason='  '"], "equivalence.stages"),
    ("replace_target_nodes_with", ["+equivalence.skip_reason=because"], "equivalence.skip_reason"),
    ("replace_target_nodes_with", ["equivalence.stages=[nope]"], "equivalence.stages"),
    ("replace_target_nodes_with", ["equivalence.stages=everything"], "equivalence.stages"),
    ("replace_target_nodes_with", ["equivalence.fresh_inputs=100000"], "equivalence.fresh_inputs"),
    ("replace_target_nodes_with", ["equivalence.fresh_inputs=-1"], "equivalence.fresh_inputs"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.float32={rtol:1e9,atol:0}"],
     "equivalence.tolerances.float32.rtol"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.float32={rtol:0,atol:.inf}"],
     "equivalence.tolerances.float32.atol"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.float32={rtol:.nan,atol:0}"],
     "equivalence.tolerances.float32.rtol"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.flot32={rtol:0.01,atol:0}"], "equivalence.tolerances.flot32"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.int64={rtol:0.01,atol:0}"], "equivalence.tolerances.int64"),
    ("replace_target_nodes_with", ["+equivalence.tolerances.float32={rtol:0.01}"], "equivalence.tolerances.float32.atol"),
    ("replace_target_nodes_with", ["equivalence.replay_rng=maybe"], "equivalence.replay_rng"),
    ("replace_target_nodes_with", ["+equivalence.bogus=1"], "equivalence.bogus"),
    ("replace_target_nodes_with", ["+expect.metrics.nostage={x:1}"], "expect.metrics.nostage"),
    ("replace_target_nodes_with", ["expect.error={stage:nope}"], "expect.error.stage"),
    ("replace_target_nodes_with", ["expect.error={stage:replace,match:'('}"], "expect.error"),
    ("replace_target_nodes_with", ["report.pictures=sometimes"], "report.pictures"),
    ("replace_target_nodes_with", ["+bogus_top=1"], "bogus_top"),
    ("replace_target_nodes_with", ["reproduces=notalist"], "reproduces"),
    ("replace_target_nodes_with", ["seed=-1"], "seed"),
    ("replace_target_nodes_with", ["seed=4294967296"], "seed"),
    ("replace_target_nodes_with", ["seed=1.5"], "seed"),
    ("replace_target_nodes_with", ["seed=${oc.env:HOME}"], "seed"),
    ("replace_target_nodes_with", ["seed=${nope}"], "seed"),
]


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for part in parents:
            node = node[part]
        node[last] = value
    return edit


def _rename_transform(new: str) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        cfg["transforms"] = {new: section for section in cfg["transforms"].values()}
    return edit


# What only a recipe file can write (an override cannot): (recipe, edit of the composed config, key).
RECIPE_EDITS = [
    ("replace_target_nodes_with", _set("recipe", "../../escape"), "recipe"),
    ("replace_target_nodes_with", _set("recipe", "a/b"), "recipe"),
    ("replace_target_nodes_with", _set("recipe", ""), "recipe"),
    ("replace_target_nodes_with", _set("recipe", "x" * 80), "recipe"),
    ("replace_target_nodes_with", _rename_transform("../../escape"), "transforms.../../escape"),
    ("replace_target_nodes_with", _rename_transform("a b"), "transforms.a b"),
    ("replace_target_nodes_with", _rename_transform("/etc/passwd"), "transforms./etc/passwd"),
    ("replace_target_nodes_with", _set("model.module", "os.system"), "model.module"),
    ("replace_target_nodes_with", _set("model.module", {"_target_": ["os", "system"]}), "model.module._target_"),
    ("replace_target_nodes_with", _set("tracer", "fxflow.tracers.SymbolicTracer"), "tracer"),
    ("replace_target_nodes_with", _set("transforms", ["fxflow.transforms.sizing.SizeNodes"]), "transforms"),
    ("replace_target_nodes_with", _set("devices", [1, 2]), "devices"),
    ("replace_target_nodes_with", _set("model.inputs", {"a": {"shape": [1], "dist": "rand"}, "b": {"value": {
        "_target_": "os.system", "command": "touch MARK"}}}), "model.inputs.b.value"),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Run cases from an empty working folder with process spawners recorded and a planted package
    on the path (set up once for the module; every case checks that nothing changed)."""
    root = tmp_path_factory.mktemp("hostile")
    cwd, runs, plant = root / "cwd", root / "runs", root / "plant" / PLANTED
    cwd.mkdir()
    plant.mkdir(parents=True)
    (plant / "__init__.py").write_text(PLANTED_SOURCE)
    marker = root / "planted_marker"
    calls: list[str] = []

    def recorder(name: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args}")
            raise PermissionError(f"{name} called from a config")
        return record

    count = 0

    def run(recipe: str, overrides: list[str], edit: Callable[[dict], None] | None = None) -> dict[str, Any]:
        nonlocal count
        count += 1
        overrides = [o.replace("MARK", str(cwd / "marker")) for o in overrides]
        cfg, files = compose_cached(recipe, overrides)
        if edit is not None:
            cfg = OmegaConf.to_container(cfg, resolve=False)
            edit(cfg)
        run_dir = runs / str(count)
        terminal = io.StringIO()
        with redirect_stdout(terminal), redirect_stderr(terminal):
            state = run_job(cfg, run_dir, overrides, files)
        summary = json.loads((run_dir / "summary.json").read_text())
        printed = io.StringIO()
        print_outcome(state, run_dir, Console(file=printed, width=400, color_system=None))
        return {"summary": summary, "printed": printed.getvalue(), "terminal": terminal.getvalue(),
                "cwd": sorted(os.listdir(cwd)), "calls": list(calls), "outside": sorted(os.listdir(root)),
                "planted": PLANTED in sys.modules or marker.exists()}

    unlink = os.unlink  # the real one, for cleaning up after the trusted case
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("PLANTED_MARKER", str(marker))
        patch.syspath_prepend(str(plant.parent))
        patch.delenv("FXFLOW_TRUSTED_PACKAGES", raising=False)
        patch.setattr(subprocess, "Popen", recorder("subprocess.Popen"))
        for name in ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp",
                     "spawnv", "spawnve", "kill", "remove", "unlink"):
            if hasattr(os, name):
                patch.setattr(os, name, recorder(f"os.{name}"))
        run.marker = marker  # type: ignore[attr-defined]
        run.forget_planted = lambda: (sys.modules.pop(PLANTED, None), marker.exists() and unlink(marker))  # type: ignore[attr-defined]
        yield run


def assert_refused(result: dict[str, Any], named: str) -> None:
    summary = result["summary"]
    assert summary["status"] == "error", summary
    message = summary["error"]["message"]
    assert named in message, message
    assert _words(message) <= _words(result["printed"])  # printed as written: no markup swallowed
    assert "Traceback" not in result["printed"] + result["terminal"]
    assert result["cwd"] == [] and result["calls"] == [] and not result["planted"]
    assert result["outside"] == ["cwd", "plant", "runs"]


def _words(text: str) -> set[str]:
    return set(text.split())


@pytest.mark.parametrize("recipe,overrides,named", TARGET_CASES, ids=[" ".join(c[1]) for c in TARGET_CASES])
def test_hostile_target_is_refused_before_import(guarded, recipe, overrides, named):
    assert_refused(guarded(recipe, overrides), named)


@pytest.mark.parametrize("recipe,overrides,named", MALFORMED, ids=[" ".join(c[1]) for c in MALFORMED])
def test_malformed_config_is_refused(guarded, recipe, overrides, named):
    assert_refused(guarded(recipe, overrides), named)


@pytest.mark.parametrize("recipe,edit,named", RECIPE_EDITS, ids=[c[2] for c in RECIPE_EDITS])
def test_malformed_recipe_content_is_refused(guarded, recipe, edit, named):
    assert_refused(guarded(recipe, [], edit), named)


# ----------------------------------------------------------------------------- generated

# Typed keys and values outside what they accept; hypothesis picks combinations.
OUT_OF_RANGE = {
    ("replace_target_nodes_with", "seed"): st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)),
    ("replace_target_nodes_with", "equivalence.fresh_inputs"): st.one_of(st.integers(max_value=-1),
                                                                         st.integers(min_value=65, max_value=10**12)),
    ("partition_latency", "devices.dev_0.mem_bytes"): st.one_of(st.integers(max_value=0),
                                                                 st.integers(min_value=2**50 + 1)),
    ("partition_latency", "devices.dev_1.logical_id"): st.one_of(st.integers(max_value=-1), st.just(0),
                                                                  st.integers(min_value=1024, max_value=10**9)),
    ("partition_latency", "transforms.partition.transfer_rate_bytes_per_sec"): st.one_of(
        st.floats(max_value=-1e-9, allow_nan=False), st.just(0), st.sampled_from([".nan", ".inf", "-.inf"])),
    ("partition_latency", "model.inputs.a.shape"): st.lists(st.integers(min_value=-10**6, max_value=-1), min_size=1,
                                                            max_size=3),
}


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_out_of_range_values_are_refused(guarded, data):
    recipe, key = data.draw(st.sampled_from(sorted(OUT_OF_RANGE)))
    value = data.draw(OUT_OF_RANGE[(recipe, key)])
    text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
    assert_refused(guarded(recipe, [f"{key}={text}"]), key)


def test_trusted_package_is_imported_only_once_trusted(guarded, monkeypatch):
    """The planted package becomes usable through the environment, never through the config."""
    refused = guarded("replace_target_nodes_with", [f"model.module._target_={PLANTED}.Model"])
    assert refused["summary"]["status"] == "error" and not refused["planted"]
    monkeypatch.setenv("FXFLOW_TRUSTED_PACKAGES", PLANTED)
    monkeypatch.delitem(sys.modules, PLANTED, raising=False)
    try:
        ran = guarded("replace_target_nodes_with", [f"model.module._target_={PLANTED}.Model"])
        assert ran["summary"]["status"] == "passed", ran["summary"]["checks"]
        assert guarded.marker.exists()  # imported, now that it is trusted
    finally:
        guarded.forget_planted()
