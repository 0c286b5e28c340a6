"""The import graph says data flows one way: config knows nothing of fxflow (and inside it, words,
rules and checking import downwards only), transforms never reach the record or the reports,
and no lower layer imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fxflow"


def fxflow_imports(path: Path) -> set[str]:
    """Every `fxflow...` module a file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "fxflow")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "fxflow":
            found.add(node.module)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules_under("config"), ids=lambda p: p.name)
def test_config_imports_nothing_else_from_fxflow(path):
    outside = {m for m in fxflow_imports(path) if not m.startswith("fxflow.config")}
    assert not outside, f"{path.name} imports {outside}"


# Inside the bottom layer too, imports run one way: the words every config message uses, then the
# rules (the schema, what a `_target_` may name), then the checking that applies them.
CONFIG_LAYERS = [
    ("deprecations", ("fxflow.config.renamed",)),
    ("words", ("fxflow.config.names", "fxflow.config.errors")),
    ("trust", ("fxflow.config.trust",)),
    ("rules", ("fxflow.config.schema", "fxflow.config.targets")),
    ("checking", ("fxflow.config.validate", "fxflow.config.components", "fxflow.config.hydra_settings")),
]


def config_layer_of(module: str) -> int | None:
    return next((index for index, (_, names) in enumerate(CONFIG_LAYERS) if module in names), None)


@pytest.mark.parametrize("path", [p for p in modules_under("config") if p.name != "__init__.py"], ids=lambda p: p.name)
def test_config_modules_import_only_the_config_layers_below_their_own(path):
    module = f"fxflow.config.{path.stem}"
    mine = config_layer_of(module)
    assert mine is not None, f"{module} is in no layer of CONFIG_LAYERS: place it there"
    sideways_or_up = {m for m in fxflow_imports(path) if m.startswith("fxflow.config.") and (config_layer_of(m) or 0) >= mine}
    assert not sideways_or_up, f"{module} ({CONFIG_LAYERS[mine][0]}) imports {sideways_or_up}"


@pytest.mark.parametrize("path", modules_under("transforms"), ids=lambda p: p.name)
def test_transforms_do_not_reach_the_record_or_reports(path):
    upward = {m for m in fxflow_imports(path)
              if m.startswith(("fxflow.record", "fxflow.reports", "fxflow.pipeline", "fxflow.plan", "fxflow.cli"))}
    assert not upward, f"{path.name} imports {upward}"


# Each layer may import the layers listed before it, never one after it.
LAYERS = [
    ("components", ("fxflow.config", "fxflow.facts", "fxflow.nodes", "fxflow.inputs", "fxflow.models", "fxflow.tracers",
                    "fxflow.partitioning", "fxflow.transforms", "fxflow.checks", "fxflow.paths")),
    ("record and reports", ("fxflow.record", "fxflow.reports", "fxflow.run_state")),
    ("plan", ("fxflow.plan",)),
    ("pipeline", ("fxflow.pipeline", "fxflow.settlement", "fxflow.compose", "fxflow.recipes", "fxflow.choices")),
    ("cli", ("fxflow.cli", "fxflow.verbs", "fxflow.__main__", "fxflow.launch")),
]


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if module.startswith(prefixes):
            return index
    return 0  # fxflow/__init__ and anything new counts as a component


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up_the_layers(path):
    module = "fxflow." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    mine = layer_of(module.removesuffix(".__init__"))
    higher = {m for m in fxflow_imports(path) if layer_of(m) > mine}
    assert not higher, f"{module} ({LAYERS[mine][0]}) imports higher layers: {higher}"
