"""Family controls: every transform (and tracer) family, broken on purpose, fails every shipped
recipe of that family.

A `passed` record must mean the step did its work. For each family a broken version is swapped
in with monkeypatch and each recipe of the family is run in-process, as written:

* `returns_input`: the step computes as usual (on a copy where it works in place), then hands
  on the module it was given, also where the computation refused;
* `does_nothing`: the step hands on the module it was given and computes nothing (for probes,
  whose output is their input anyway, and where it is the cheaper twin of `returns_input`);
* a wrong parameter where the family has one that matters (partition ids off by one, keyword
  normalization off, pairs read the wrong way round, ...).

Every recipe in which the break took effect must end not passed: failed, or error from a check,
the stage protocol or a later stage (an error that looks like the break's own bug, a TypeError
or AttributeError, and a failure where the break never ran count as no catch). A break
"takes effect" when the broken code ran (a function rewrite break does not run for a model that
is a module). Recipes that a break cannot tell from a working step are declared, with the
reason, in `may_survive`; each declaration must still hold (the recipe exists and survives).
Finally every recipe of a family must be failed by at least one of its breaks.

Recipes are found from recipes/*.yaml by the transform and tracer classes their defaults list
names, so a new recipe joins its family's control by itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from test_recipes import BENCHMARK_RECIPES

from conftest import run_in_process
from fxflow import tracers
from fxflow.paths import conf_dir
from fxflow.recipes import recipe_files
from fxflow.transforms.split_policies import SplitPolicy

Hit = Callable[[], None]  # the break calls it once it has taken effect


@dataclass(frozen=True)
class Break:
    name: str
    install: Callable[[pytest.MonkeyPatch, Hit], None]
    may_survive: dict[str, str] = field(default_factory=dict)  # recipe -> why this break cannot show in it


@dataclass(frozen=True)
class Family:
    target: str  # class path of the transform or tracer, as a recipe's component config names it
    breaks: tuple[Break, ...]


def _cls(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def returns_input(path: str, in_place: bool = False, may_survive: dict[str, str] | None = None) -> Break:
    """The step computes as usual (on a copy of a module it would change in place), then returns
    its input, also where the computation refused."""
    def install(mp: pytest.MonkeyPatch, hit: Hit) -> None:
        cls = _cls(path)
        original = cls.apply

        def apply(self: Any, gm: Any, ctx: Any) -> Any:
            try:
                original(self, copy.deepcopy(gm) if in_place else gm, ctx)
            except Exception:  # noqa: BLE001 - the broken step swallows its refusal
                pass
            hit()
            return gm
        mp.setattr(cls, "apply", apply)
    return Break("returns_input", install, may_survive or {})


def does_nothing(path: str, may_survive: dict[str, str] | None = None) -> Break:
    """The step returns the module it was given without computing anything."""
    def install(mp: pytest.MonkeyPatch, hit: Hit) -> None:
        def apply(self: Any, gm: Any, ctx: Any) -> Any:
            hit()
            return gm
        mp.setattr(_cls(path), "apply", apply)
    return Break("does_nothing", install, may_survive or {})


def with_parameter(path: str, name: str, **update: Any) -> Break:
    """The step runs with a parameter other than the recipe's (`update`)."""
    def install(mp: pytest.MonkeyPatch, hit: Hit) -> None:
        cls = _cls(path)
        original = cls.apply

        def apply(self: Any, gm: Any, ctx: Any) -> Any:
            hit()
            return original(self.model_copy(update=update), gm, ctx)
        mp.setattr(cls, "apply", apply)
    return Break(name, install)


def _split_ids_off_by_one(mp: pytest.MonkeyPatch, hit: Hit) -> None:
    original = SplitPolicy.assignment

    def assignment(self: SplitPolicy, gm: Any) -> dict[str, int]:
        hit()
        return {node: partition + 1 for node, partition in original(self, gm).items()}
    mp.setattr(SplitPolicy, "assignment", assignment)


def _fuse_every_batchnorm(mp: pytest.MonkeyPatch, hit: Hit) -> None:
    """fuse folds BatchNorm layers that keep no running statistics too (as if they had the
    defaults: mean 0, variance 1), instead of leaving them alone."""
    cls = _cls("fxflow.transforms.fuse.FuseConvBn")
    original = cls.apply

    def apply(self: Any, gm: Any, ctx: Any) -> Any:
        forced = copy.deepcopy(gm)
        for module in forced.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not module.track_running_stats:
                module.track_running_stats = True
                module.register_buffer("running_mean", torch.zeros(module.num_features))
                module.register_buffer("running_var", torch.ones(module.num_features))
                hit()
        return original(self, forced, ctx)
    mp.setattr(cls, "apply", apply)


def _plain_symbolic(tracer: type) -> Callable[[pytest.MonkeyPatch, Hit], None]:
    """A break: `tracer` traces as plain symbolic tracing does (no `assert` rewrite, no meta tensors)."""
    def brk(mp: pytest.MonkeyPatch, hit: Hit) -> None:
        def trace(self: Any, root: Any, inputs: dict[str, Any]) -> Any:
            hit()
            return tracers.SymbolicTracer().trace(root, inputs)
        mp.setattr(tracer, "trace", trace)
    return brk


_symbolic_instead_of_rewriting = _plain_symbolic(tracers.RewritingTracer)


def _torch_function_rewrite(mp: pytest.MonkeyPatch, hit: Hit) -> None:
    """Functions rewritten by torch's own `AST_Rewriter.rewrite` (which execs into the function's
    globals and cannot pick out a module-level function's new definition)."""
    from torch.fx.experimental.rewriter import AST_Rewriter

    def rewrite(fn: Any) -> Any:
        hit()
        return AST_Rewriter().rewrite(fn)
    mp.setattr(tracers, "rewrite_function", rewrite)


_symbolic_instead_of_meta = _plain_symbolic(tracers.MetaTracer)


def _pairs_reversed(mp: pytest.MonkeyPatch, hit: Hit) -> None:
    cls = _cls("fxflow.transforms.type_matches.TypeMatches")
    original = cls.apply

    def apply(self: Any, gm: Any, ctx: Any) -> Any:
        hit()
        return original(self.model_copy(update={"pairs": [(b, a) for a, b in self.pairs]}), gm, ctx)
    mp.setattr(cls, "apply", apply)


T = "fxflow.transforms."
NOT_RUNNING_STATE = {"conv_bn_fusion_not_running_state": "its BatchNorm keeps no running statistics, so the "
                     "working step leaves the module as it was: only a fuse that folds it anyway shows"}

FAMILIES: dict[str, Family] = {
    "partition": Family(T + "partition.PartitionOverDevices", (returns_input(T + "partition.PartitionOverDevices"),)),
    "split_module": Family(T + "split.SplitModule", (
        returns_input(T + "split.SplitModule"),
        Break("partition_ids_off_by_one", _split_ids_off_by_one))),
    "rewriting_tracer": Family("fxflow.tracers.RewritingTracer", (
        Break("no_rewrite", _symbolic_instead_of_rewriting),
        Break("torch_function_rewrite", _torch_function_rewrite))),
    "meta_tracer": Family("fxflow.tracers.MetaTracer", (Break("no_meta_args", _symbolic_instead_of_meta),)),
    "fusion": Family(T + "fuse.FuseConvBn", (
        returns_input(T + "fuse.FuseConvBn", may_survive=NOT_RUNNING_STATE),
        Break("fuses_without_running_stats", _fuse_every_batchnorm))),
    # does_nothing rather than returns_input: every figure is read from the returned module, so the
    # two fail alike, and this one skips the optimization and its timing calls
    "optimize_for_inference": Family(T + "optimize_for_inference.OptimizeForInference", (
        does_nothing(T + "optimize_for_inference.OptimizeForInference"),)),
    "merge_matmul": Family(T + "merge_matmul.MergeMatmul", (returns_input(T + "merge_matmul.MergeMatmul"),)),
    "normalize_operators": Family(T + "normalize_operators.NormalizeOperators", (
        returns_input(T + "normalize_operators.NormalizeOperators"),)),
    "normalize_args": Family(T + "normalize_args.NormalizeArgs", (
        returns_input(T + "normalize_args.NormalizeArgs"),
        with_parameter(T + "normalize_args.NormalizeArgs", "positional_kept", normalize_to_only_use_kwargs=False))),
    "normalize_function": Family(T + "normalize_function.NormalizeFunction", (
        does_nothing(T + "normalize_function.NormalizeFunction"),
        with_parameter(T + "normalize_function.NormalizeFunction", "positional_kept",
                       normalize_to_only_use_kwargs=False))),
    "annotate_types": Family(T + "annotate_types.AnnotateTypesWithSchema", (
        returns_input(T + "annotate_types.AnnotateTypesWithSchema"),)),
    "annotate_getitem": Family(T + "annotate_getitem.AnnotateGetitemNodes", (
        returns_input(T + "annotate_getitem.AnnotateGetitemNodes"),)),
    "type_matches": Family(T + "type_matches.TypeMatches", (
        does_nothing(T + "type_matches.TypeMatches"),
        Break("pairs_reversed", _pairs_reversed))),
    "replace_targets": Family(T + "replace_targets.ReplaceTargets", (
        returns_input(T + "replace_targets.ReplaceTargets", in_place=True),
        with_parameter(T + "replace_targets.ReplaceTargets", "wrong_new_target", new_target="operator.sub"))),
    "export_folder": Family(T + "export_folder.ExportFolder", (returns_input(T + "export_folder.ExportFolder"),)),
    "pickle": Family(T + "pickle_round_trip.PickleRoundTrip", (
        returns_input(T + "pickle_round_trip.PickleRoundTrip"),)),
    "lowering_attrs": Family(T + "lowering_attrs.LoweringAttrs", (
        returns_input(T + "lowering_attrs.LoweringAttrs", in_place=True),)),
}


# --------------------------------------------------------------------------- which recipes use what


@lru_cache(maxsize=None)
def _target_of(group: str, option: str) -> str | None:
    path = conf_dir() / group / f"{option}.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("_target_") if path.exists() else None


def components(recipe: Path) -> set[str]:
    """Class paths of the transforms and the tracer a recipe file composes: those its defaults list
    picks from conf/transform and conf/tracer, those it names inline, and the primary config's
    tracer where it picks none."""
    data = yaml.safe_load(recipe.read_text()) or {}
    found: set[str] = set()
    tracer_chosen = False
    for entry in data.get("defaults") or []:
        if not isinstance(entry, dict):
            continue
        for key, option in entry.items():
            group = key.removeprefix("override").strip().lstrip("/").split("@")[0]
            if group in ("transform", "tracer") and isinstance(option, str):
                found.add(_target_of(group, option) or "")
                tracer_chosen |= group == "tracer"
    for spec in (data.get("transforms") or {}).values():
        if isinstance(spec, dict) and "_target_" in spec:
            found.add(spec["_target_"])
    if isinstance(data.get("tracer"), dict) and "_target_" in data["tracer"]:
        found.add(data["tracer"]["_target_"])
        tracer_chosen = True
    if not tracer_chosen:
        primary = yaml.safe_load((conf_dir() / "config.yaml").read_text())
        choice = next(e["tracer"] for e in primary["defaults"] if isinstance(e, dict) and "tracer" in e)
        found.add(_target_of("tracer", choice) or "")
    return found - {""}


@lru_cache(maxsize=1)
def _shipped_components() -> dict[str, frozenset[str]]:
    """`components` of every shipped recipe, read once per worker (YAML parsing ~3 s for all families)."""
    return {name: frozenset(components(path)) for name, path in recipe_files().items()}


def family_recipes(target: str) -> list[str]:
    """The shipped recipes composing `target`; recipes whose point is scale are timed by the
    benchmarks instead (test_recipes.BENCHMARK_RECIPES)."""
    return [name for name, found in _shipped_components().items()
            if target in found and name not in BENCHMARK_RECIPES]


@pytest.mark.parametrize("recipe", [
    "subgraph_creation",   # a transform from the defaults list, the primary config's tracer
    "meta_tracer_relu",    # a tracer override beside a transform
    "type_matches",        # one transform under two stage names
    "distributed_chain",   # three transforms
])
def test_discovery_reads_defaults_lists_as_composition_does(recipe):
    """What `components` reads from a recipe file is what Hydra composes for it (a few recipes,
    one per way of naming components: composing every recipe costs ~0.1 s each)."""
    from conftest import compose_cached

    cfg, _ = compose_cached(recipe, [])
    composed = {spec["_target_"] for spec in (cfg.transforms or {}).values()} | {cfg.tracer["_target_"]}
    assert components(recipe_files()[recipe]) == composed


def test_discovery_reads_inline_targets(tmp_path):
    recipe = tmp_path / "inline.yaml"
    recipe.write_text("defaults:\n  - override /tracer: meta\n"
                      "transforms:\n  merge: {_target_: fxflow.transforms.merge_matmul.MergeMatmul}\n")
    assert components(recipe) == {"fxflow.tracers.MetaTracer", "fxflow.transforms.merge_matmul.MergeMatmul"}


# --------------------------------------------------------------------------- the controls


# A break is caught by a check (failed) or by the stage protocol, the tracer or a later stage
# refusing what it got (error: BrokenContract, TraceError, RuntimeError, ...). These error types
# are what a break that does not fit the code it replaces raises: they count as no catch.
CONTROL_BUGS = {"TypeError", "AttributeError", "NameError", "KeyError", "ImportError", "ModuleNotFoundError"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_recipe_of_the_family_fails_when_its_step_is_broken(family, tmp_path):
    """Each break of the family, on each recipe of it: not passed wherever the break took effect
    (bar the declared survivors), and every recipe failed by at least one break."""
    spec = FAMILIES[family]
    recipes = family_recipes(spec.target)
    assert recipes, f"no shipped recipe composes {spec.target}"
    failed_by: dict[str, list[str]] = {recipe: [] for recipe in recipes}
    wrong: list[str] = []
    skipped: set[str] = set()
    for brk in spec.breaks:
        stale = sorted(set(brk.may_survive) - set(recipes))
        assert not stale, f"{family}/{brk.name} declares survivors that are no recipe of the family: {stale}"
        for recipe in recipes:
            hits: list[int] = []
            with pytest.MonkeyPatch.context() as mp:
                brk.install(mp, lambda: hits.append(1))
                summary = run_in_process(recipe, [], tmp_path / f"{brk.name}-{recipe}").summary
            status, error = summary["status"], summary.get("error") or {}
            if status == "skipped":  # a stated requirement (MKLDNN, a package) is missing on this machine
                skipped.add(recipe)
            elif status not in ("passed", "failed", "error"):
                wrong.append(f"{brk.name}: {recipe} ended {status}")
            elif status != "passed" and not hits:
                wrong.append(f"{brk.name}: {recipe} ended {status} but the break never ran: {error.get('message')}")
            elif status == "error" and error.get("type") in CONTROL_BUGS:
                wrong.append(f"{brk.name}: {recipe} ended in an error that looks like the break's own bug, not a "
                             f"check catching it: {error.get('message')}")
            elif status != "passed":
                failed_by[recipe].append(brk.name)
                if recipe in brk.may_survive:
                    wrong.append(f"{brk.name}: {recipe} is declared a survivor but failed; drop the declaration")
            elif hits and recipe not in brk.may_survive:
                wrong.append(f"{brk.name}: {recipe} stayed passed with the step broken")
    if skipped == set(recipes):
        pytest.skip(f"every {family} recipe is skipped on this machine (a stated requirement is missing)")
    uncovered = [recipe for recipe, breaks in failed_by.items() if not breaks and recipe not in skipped]
    assert not wrong and not uncovered, "\n".join(wrong + [f"no break fails {r}" for r in uncovered])


# ------------------------------------------------------------------ torch's main assert, on the module returned


def _doubling_output(path: str) -> Callable[[pytest.MonkeyPatch], None]:
    """The step returns its split module with the graph's output doubled: the submodules, node
    counts and placement stay right, only what the returned module computes is wrong."""
    def install(mp: pytest.MonkeyPatch) -> None:
        cls = _cls(path)
        original = cls.apply

        def apply(self: Any, gm: Any, ctx: Any) -> Any:
            split = original(self, gm, ctx)
            output = next(n for n in split.graph.nodes if n.op == "output")
            with split.graph.inserting_before(output):
                doubled = split.graph.call_function(torch.mul, (output.args[0], 2))
            output.args = (doubled,)
            split.recompile()
            return split
        mp.setattr(cls, "apply", apply)
    return install


@pytest.mark.parametrize("recipe,path", [
    ("subgraph_creation", T + "split.SplitModule"),
    ("size_based_partition", T + "partition.PartitionOverDevices"),
])
def test_the_split_module_returned_is_what_equivalence_judges(recipe, path, tmp_path):
    """torch's split tests assert that the split module computes what the traced one does; here the
    stage's equivalence check does, on the module the stage returned: a split whose structure is
    right but whose output is not fails on that check alone."""
    with pytest.MonkeyPatch.context() as mp:
        _doubling_output(path)(mp)
        run = run_in_process(recipe, [], tmp_path / "run")
    stage = "split" if "split" in path else "partition"
    failing = [c["name"] for c in run.summary["checks"] if not c["passed"]]
    assert run.summary["status"] == "failed" and failing == [f"equivalence.{stage}"], run.summary["checks"]
