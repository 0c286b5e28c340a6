"""Export a GraphModule as a Python package with `GraphModule.to_folder`, and import it back."""

from __future__ import annotations

import importlib.util
import sys
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from pydantic import field_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule

from fxflow.stages import MODULE, StageFacts
from fxflow.transforms.base import StageContext, Transform

_PACKAGE_PREFIX = "fxflow_export_"  # the names exported packages are imported under


class ExportFacts(StageFacts):
    """Where the package was written and imported from, its files, what the export dropped or pickled."""

    folder: str
    package: str
    files: list[str]
    dropped_annotations: int
    pickled_children: list[str]


class ExportFolder(Transform):
    """`gm.to_folder(ctx.artifacts, module_name)`, then the folder imported as a package and its
    `module_name` class built: that module, not the GraphModule, is the stage's output, so the
    pipeline's equivalence check proves the export computes what the model computes.

    Usage in a recipe::

        defaults:
          - /transform@transforms.export: export_folder
        transforms:
          export: {module_name: Foo}

    The imported module is put in the exported module's train/eval modes, submodule by
    submodule (a freshly built module starts in training mode). Node type annotations are left
    out of the exported code (`dropped_annotations` says how many): to_folder would not import
    the names they use. Facts: `files` written, `pickled_children` (children torch could not
    write as code and saved with torch.save), `package` (the name it was imported under),
    `folder` (these four read from the returned module: its class's package and that package's
    folder), `dropped_annotations`.
    """

    facts_model: ClassVar = ExportFacts

    module_name: str = "FxModule"

    @field_validator("module_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise PydanticCustomError("module_name", "'{value}' is not a Python class name", {"value": value})
        return value

    gives: ClassVar = MODULE  # the exported class, built from its files: no longer a GraphModule

    def apply(self, gm: GraphModule, ctx: StageContext) -> torch.nn.Module:
        folder = ctx.artifacts
        folder.mkdir(parents=True, exist_ok=True)
        with _without_annotations(gm) as dropped, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Was not able to save the following children modules as reprs")
            gm.to_folder(folder, self.module_name)
        package = f"{_PACKAGE_PREFIX}{self.module_name}_{uuid.uuid4().hex[:12]}"
        try:
            module = _import_package(package, folder / "__init__.py")
        except NameError as exc:
            raise RuntimeError(f"the exported module.py does not import a name its code uses ({exc}); to_folder "
                               "writes imports only for torch's own builtins") from exc
        loaded: torch.nn.Module = getattr(module, self.module_name)()
        modes = {name: m.training for name, m in gm.named_modules()}
        for name, sub in loaded.named_modules():
            sub.training = modes.get(name, gm.training)
        ctx.facts["dropped_annotations"] = dropped
        return loaded

    def returned_facts(self, given: GraphModule, returned: Any) -> dict[str, Any]:
        """The package the returned module's class was imported from, and the files of its folder:
        nothing when the stage handed on a module that no export built."""
        package = type(returned).__module__.rpartition(".")[0]
        source = getattr(sys.modules.get(type(returned).__module__), "__file__", None)
        if not package.startswith(_PACKAGE_PREFIX) or source is None:
            return {"files": [], "pickled_children": []}
        folder = Path(source).parent
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        return {
            "folder": str(folder),
            "package": package,
            "files": files,
            "pickled_children": sorted(f.removesuffix(".pt") for f in files
                                       if f.endswith(".pt") and f != "state_dict.pt"),
        }


@contextmanager
def _without_annotations(gm: GraphModule) -> Iterator[int]:
    """The graph's code without type annotations for the time of the export.

    to_folder writes imports for torch's builtins only, so an annotation (`x: torch.Tensor` in
    forward becomes `x : _torch_Tensor_`) would name something module.py never defines.
    Annotations do not change what is computed; they are restored afterwards. Yields how many
    nodes had one."""
    types = {node: node.type for node in gm.graph.nodes if node.type is not None}
    for node in types:
        node.type = None
    if types:
        gm.recompile()
    try:
        yield len(types)
    finally:
        for node, type_ in types.items():
            node.type = type_
        if types:
            gm.recompile()


def _import_package(name: str, init: Any) -> Any:
    """Import the package whose `__init__.py` is `init` under `name` (kept in sys.modules, so
    the module's class stays importable, e.g. for pickling, for the rest of the run)."""
    spec = importlib.util.spec_from_file_location(name, init)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
