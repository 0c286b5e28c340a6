"""Which `_target_` a config may name: decided from the dotted name before anything is imported.

A recipe is reviewed like code but run like a tool, often by someone who did not write it, so
a config names models, references and components, never arbitrary callables:

    policy = TargetPolicy.from_environment()          # trusted packages come from outside the config
    model = policy.model("fxflow.models.recommendation.SparseNN")     # ModelTarget, or TargetRefused
    cls = policy.component("fxflow.tracers.SymbolicTracer", Tracer)
    fn = policy.graph_function("operator.mul")

Each check runs in this order, and nothing is imported until the name has passed the first three:

1. the name is a dotted path of public identifiers (`package.module.Name`);
2. its package is not on the deny list (process, file, import, network, serialisation and
   introspection modules, and torch's loaders, compilers and hubs): no setting widens that;
3. its package is one fxflow builds from: `fxflow.models` and `torch.nn` for models,
   `fxflow` for components, `operator`/`math`/`torch` for graph functions, plus the packages
   the user trusts outside the recipe (`[tool.fxflow] trusted_packages` in the pyproject.toml
   found from the working folder, or `FXFLOW_TRUSTED_PACKAGES`, comma-separated);
4. the longest module prefix is imported and the rest fetched as attributes, never through
   another module reached by attribute (`fxflow.models.recommendation.torch.load`) nor a lazy
   import; the object is what the key asks for (an `nn.Module` subclass, a registered factory or
   a Python function to trace; a subclass of the component's kind), and the module it was
   defined in passes 2 and 3 too, so a re-export cannot smuggle one in.

Inside `names_only()` (fxflow show / validate) a name from a trusted package stops after step 3:
the review verbs never run a package's code. Hydra's callbacks (`hydra_callback`) are fxflow's
own only, whatever is trusted.

Graph functions (what a graph node will call: replacement targets) are judged by the object the
name resolves to, never by its dotted prefix: `torch.nn.functional.torch.ops.load_library`
starts like a torch function but is torch's library loader. The name is walked attribute by
attribute from `operator`, `math` or `torch` (the root is imported; a step that would import a
submodule stops), and the object found must be on an allow list by identity: operator's arithmetic,
comparison and item functions, math's functions, and torch's tensor functions (those that take
part in `__torch_function__`, less the few that reach outside the tensor: `Tensor.numpy`,
storage, hooks, `backward`). Loaders, savers, hubs, compilers and file readers are not on it.
A function named only to find the nodes that call it (`matched_function`: an old target, a split
point) is found by the same walk and never called.

Hydra's own `instantiate` (a blocklist since hydra-core 1.3.4, widened in 1.3.7; read in
1.3.8's hydra/_internal/target_policy.py) refuses a fixed list of dangerous callables by name
before importing them (subprocess, os.system, os.remove, shutil.rmtree,
importlib.import_module, pickle.loads, ...), but it imports any other module named (so import
side effects run) and allows e.g. `builtins.open`, `shutil.copy` and `socket.socket`;
`hydra.utils.get_object` / `get_class` apply no check at all. This policy is the allowlist in
front of it; models and components are then still built with `instantiate`, so Hydra's checks
apply as a second layer.
"""

from __future__ import annotations

import importlib
import inspect
import math
import operator
import re
import sys
import types
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from hydra.utils import instantiate

from fxflow.config.errors import first_line
from fxflow.config.trust import ENV_VAR, Trust, user_code_on_path

DOTTED = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")

# Packages a config may never name, whatever is trusted: they start processes, touch files,
# import or load code, reach the network, deserialise objects, or reach into the interpreter.
DENIED_PACKAGES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "builtins", "importlib", "pkgutil", "runpy", "zipimport",
    "pathlib", "io", "tempfile", "glob", "fileinput", "filecmp", "zipfile", "tarfile", "gzip", "bz2", "lzma",
    "shelve", "dbm", "sqlite3", "socket", "ssl", "select", "selectors", "asyncio", "http", "urllib", "ftplib",
    "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc", "socketserver", "webbrowser", "requests", "urllib3",
    "pickle", "_pickle", "copyreg", "marshal", "dill", "cloudpickle", "joblib", "yaml", "ctypes", "cffi",
    "multiprocessing", "concurrent", "threading", "_thread", "signal", "pty", "fcntl", "resource", "mmap",
    "code", "codeop", "pdb", "bdb", "inspect", "gc", "types", "functools", "operator", "_operator", "ast",
    "dis", "atexit", "logging", "platform", "sysconfig", "site", "venv", "ensurepip", "pip", "setuptools",
    "distutils", "hydra", "omegaconf", "pydantic", "unittest", "doctest", "timeit", "cProfile", "profile",
    "trace", "tracemalloc", "faulthandler", "pydoc", "builtins", "__main__", "__future__",
})
# Inside torch: loaders (pickle), hubs (network + code), compilers and extension builders
# (subprocesses), file writers, process groups, operator libraries.
DENIED_TORCH = (
    "torch.hub", "torch.load", "torch.save", "torch.serialization", "torch.package", "torch.utils",
    "torch.multiprocessing", "torch.distributed", "torch.jit", "torch.ops", "torch.library", "torch.compile",
    "torch.compiler", "torch.export", "torch.onnx", "torch.backends", "torch.cuda", "torch.mps", "torch.xpu",
    "torch.profiler", "torch.autograd.profiler", "torch.testing", "torch.fx", "torch.func", "torch.classes",
    "torch.set_default_device", "torch.use_deterministic_algorithms", "torch.set_num_threads",
    "torch.from_file", "torch.nn.parallel",
)
# operator's functions a graph may call: arithmetic, comparison, logic and item access (never
# call/methodcaller/attrgetter/itemgetter, which call or fetch whatever their arguments name).
OPERATOR_FUNCTIONS = (
    "abs", "add", "and_", "concat", "contains", "eq", "floordiv", "ge", "getitem", "gt", "iadd", "iand",
    "iconcat", "ifloordiv", "ilshift", "imatmul", "imod", "imul", "index", "inv", "invert", "ior", "ipow",
    "irshift", "is_", "is_not", "isub", "itruediv", "ixor", "le", "lshift", "lt", "matmul", "mod", "mul",
    "ne", "neg", "not_", "or_", "pos", "pow", "rshift", "setitem", "sub", "truediv", "truth", "xor",
)
# Tensor methods that reach outside the tensor: to numpy (and from there to files), storage and
# shared memory, autograd hooks and backward, raw pointers, and the ones that call a Python callable.
TENSOR_METHODS_OUTSIDE = frozenset({
    "numpy", "tolist", "storage", "untyped_storage", "share_memory_", "register_hook",
    "register_post_accumulate_grad_hook", "backward", "data_ptr", "apply_", "map_", "map2_",
})

MODEL_PACKAGES = ("fxflow.models", "torch.nn")
COMPONENT_PACKAGES = ("fxflow",)
GRAPH_FUNCTION_PACKAGES = ("operator", "math", "torch")

_FACTORIES: dict[int, Callable[..., Any]] = {}


def model_factory(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a function that builds a model from config arguments (a decorator)::

        @model_factory
        def tiny_mlp(width: int = 4) -> nn.Module: ...

    Only registered functions are called with the config's arguments; any other function a
    model key names is the model itself, traced as written.
    """
    _FACTORIES[id(fn)] = fn
    return fn


class TargetRefused(Exception):
    """A `_target_` the policy does not accept; `accepted` says what would be."""

    def __init__(self, message: str, accepted: str = ""):
        super().__init__(message)
        self.message = message
        self.accepted = accepted


class NotImported(TargetRefused):
    """Inside `names_only()`: the name is from a trusted package and passed every check made
    without importing it; the review verbs stop there instead of running the package's code."""


_NOT_IMPORTING: ContextVar[list[str] | None] = ContextVar("fxflow_not_importing", default=None)


@contextmanager
def names_only() -> Iterator[list[str]]:
    """Check names from trusted packages without importing them (fxflow show / validate): the
    policy raises NotImported for each; the list yielded collects their names."""
    names: list[str] = []
    token = _NOT_IMPORTING.set(names)
    try:
        yield names
    finally:
        _NOT_IMPORTING.reset(token)


def not_imported() -> list[str]:
    """The trusted names left unimported so far inside `names_only()` ([] outside it)."""
    return list(_NOT_IMPORTING.get() or [])


def trust_from_environment(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Trust:
    """The packages trusted outside the recipe, with where each trust came from (deny list applied)."""
    return Trust.from_environment(cwd, environ, refuse=_denied)


@dataclass(frozen=True)
class ModelTarget:
    """A model or reference the policy accepted: how it is built from the config's arguments.

    `kind` is "module" (an nn.Module subclass), "factory" (a registered model factory) or
    "function" (a Python function, traced as written). Calling it builds the model through
    Hydra's `instantiate`, so Hydra's own target checks apply too.
    """

    path: str
    obj: Any
    kind: str

    def __call__(self, **kwargs: Any) -> Any:
        if self.kind == "function":
            return self.obj
        return instantiate({"_target_": self.path, **kwargs}, _recursive_=False, _convert_="all")


@dataclass(frozen=True)
class TargetPolicy:
    """The packages this process may build from, beyond fxflow's own; see the module docstring."""

    trusted: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # where `trusted` came from, for messages
    ignored: tuple[str, ...] = field(default=())  # trusted entries refused, with the reason

    @classmethod
    def from_environment(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> "TargetPolicy":
        """Trusted packages from `FXFLOW_TRUSTED_PACKAGES` and the nearest pyproject.toml's `[tool.fxflow]`
        at or above the working folder (fxflow.config.trust)."""
        trust = trust_from_environment(cwd, environ)
        return cls(trust.packages, trust.sources, trust.ignored)

    # ------------------------------------------------------------------ the three kinds

    def model(self, path: Any) -> ModelTarget:
        """A model or reference: an nn.Module subclass, a registered factory, or a function to trace."""
        accepted = ("an nn.Module subclass, a @model_factory function or a Python function to trace, from "
                    + self._packages(MODEL_PACKAGES))
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if isinstance(obj, type) and issubclass(obj, _torch().nn.Module):
            self._check_home(obj, MODEL_PACKAGES, accepted)
            return ModelTarget(path, obj, "module")
        if id(obj) in _FACTORIES and _FACTORIES[id(obj)] is obj:
            self._check_home(obj, MODEL_PACKAGES, accepted)
            return ModelTarget(path, obj, "factory")
        if isinstance(obj, types.FunctionType) and not path.startswith("torch."):
            self._check_home(obj, MODEL_PACKAGES, accepted)
            return ModelTarget(path, obj, "function")
        raise TargetRefused(f"is not a model (it is a {_kind_of(obj)})", accepted)

    def component(self, path: Any, base: type) -> type:
        """A component class: a concrete subclass of `base` (Transform, Tracer, LatencyModel)."""
        accepted = f"a {base.__name__} subclass from " + self._packages(COMPONENT_PACKAGES)
        obj = self._locate(path, COMPONENT_PACKAGES, accepted)
        if not (isinstance(obj, type) and issubclass(obj, base)) or inspect.isabstract(obj):
            raise TargetRefused(f"is not a {base.__name__} (it is a {_kind_of(obj)})", accepted)
        self._check_home(obj, COMPONENT_PACKAGES, accepted)
        return obj

    def hydra_callback(self, path: Any) -> type:
        """A Hydra callback class (`hydra.callbacks.NAME._target_`): fxflow's own only, never widened by
        trust, since Hydra builds callbacks before any check of the job's config runs."""
        from hydra.experimental.callback import Callback

        accepted = "one of fxflow's own callbacks (a hydra Callback subclass from fxflow)"
        obj = self._locate(path, COMPONENT_PACKAGES, accepted, trust=False)
        if not (isinstance(obj, type) and issubclass(obj, Callback)):
            raise TargetRefused(f"is not a Hydra callback (it is a {_kind_of(obj)})", accepted)
        home = _home_module(obj)
        if home is None or not _under(home, COMPONENT_PACKAGES):
            raise TargetRefused(f"is defined in {home}, not in fxflow", accepted)
        return obj

    def module_class(self, path: Any) -> type:
        """An nn.Module class named as data (a tracer's leaf modules)."""
        accepted = "an nn.Module class from " + self._packages(MODEL_PACKAGES)
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if not (isinstance(obj, type) and issubclass(obj, _torch().nn.Module)):
            raise TargetRefused(f"is not an nn.Module class (it is a {_kind_of(obj)})", accepted)
        self._check_home(obj, MODEL_PACKAGES, accepted)
        return obj

    def graph_function(self, path: Any) -> Callable[..., Any]:
        """A function a graph node may call: a pure tensor function from operator, math or torch,
        judged by the object the name resolves to (never widened by trust)."""
        accepted = "a tensor function from operator, math or torch, e.g. operator.mul or torch.relu"
        obj = _walk(path, GRAPH_FUNCTION_PACKAGES, accepted)
        if id(obj) not in _graph_functions():
            raise TargetRefused(f"resolves to {_describe(obj)}, which is not a tensor function a graph may call "
                                "(loaders, file I/O, compilers and anything reaching outside the tensor are not)",
                                accepted)
        return obj

    def tensor_method(self, name: Any) -> str:
        """A method name a `call_method` node may call on a tensor: one whose Tensor method is a
        graph function (so `numpy`, `tolist`, storage and hooks are not)."""
        accepted = "a tensor method such as add, relu or view"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise TargetRefused("is not a public method name", accepted)
        tensor = _torch().Tensor
        method = inspect.getattr_static(tensor, name, None)
        if method is None or name in TENSOR_METHODS_OUTSIDE or id(getattr(tensor, name)) not in _graph_functions():
            raise TargetRefused("is not a tensor method a graph may call (methods reaching outside the tensor, "
                                "such as numpy, tolist or storage, are not)", accepted)
        return name

    def matched_function(self, path: Any) -> Callable[..., Any]:
        """A function named only to find the nodes that call it (a target to replace or split at):
        found by the same walk as a graph function, never called, so any callable qualifies."""
        accepted = "a function from operator, math or torch, e.g. operator.add or torch.relu"
        obj = _walk(path, GRAPH_FUNCTION_PACKAGES, accepted)
        if not callable(obj) or isinstance(obj, types.ModuleType):
            raise TargetRefused(f"resolves to {_describe(obj)}, which is not a function", accepted)
        return obj

    def torch_operator(self, path: Any) -> Any:
        """A torch operator a probe inspects but never calls (`torch.ops.aten.add.Tensor`, `torch.add`)."""
        accepted = "a torch operator (torch.ops.NAMESPACE.OP[.OVERLOAD]) or tensor function (torch.add)"
        obj = _walk(path, ("torch",), accepted)
        ops = _torch()._ops
        if isinstance(obj, (ops.OpOverload, ops.OpOverloadPacket)) or id(obj) in _graph_functions():
            return obj
        raise TargetRefused(f"resolves to {_describe(obj)}, which is not a torch operator", accepted)

    def user_function(self, path: Any) -> Callable[..., Any]:
        """A Python function of the user's that fxflow calls with graph data (a split callback):
        from fxflow.models or a trusted package, never a builtin or a class."""
        accepted = "a Python function from " + self._packages(MODEL_PACKAGES)
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if not isinstance(obj, types.FunctionType):
            raise TargetRefused(f"is not a Python function (it is a {_kind_of(obj)})", accepted)
        self._check_home(obj, MODEL_PACKAGES, accepted)
        return obj

    def data_class(self, path: Any) -> type:
        """A class an example input is built from (a NamedTuple, a small data class): from
        fxflow.models or a trusted package."""
        accepted = "a class from " + self._packages(MODEL_PACKAGES)
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if not isinstance(obj, type):
            raise TargetRefused(f"is not a class (it is a {_kind_of(obj)})", accepted)
        self._check_home(obj, MODEL_PACKAGES, accepted)
        return obj

    # ------------------------------------------------------------------ shared steps

    def _locate(self, path: Any, packages: tuple[str, ...], accepted: str, trust: bool = True) -> Any:
        """Check the name, then import and fetch the object; TargetRefused on any failure."""
        if not isinstance(path, str) or not path:
            raise TargetRefused("is required: name what to build", accepted)
        if not DOTTED.fullmatch(path):
            raise TargetRefused("is not a dotted import path of public names (package.module.Name)", accepted)
        if any(part.startswith("_") for part in path.split(".")):
            raise TargetRefused("names a private object (a part starts with '_')", accepted)
        if _denied(path):
            raise TargetRefused("is in a package a config may never name (process, file, import, network or "
                                "code-loading modules); no setting allows it", accepted)
        allowed = packages + (self.trusted if trust else ())
        if not _under(path, allowed):
            hint = self._trust_hint() if trust else ""
            raise TargetRefused(f"is not from a package fxflow builds from here{hint}", accepted)
        if not _under(path, packages):  # the user's own code, trusted outside the recipe
            if _NOT_IMPORTING.get() is not None:
                _NOT_IMPORTING.get().append(path)
                raise NotImported(f"is from a trusted package; checked by name only, not imported", accepted)
            user_code_on_path()
        return _import_object(path, accepted)

    def _check_home(self, obj: Any, packages: tuple[str, ...], accepted: str) -> None:
        """The module an object was defined in must pass the same checks as its name (no re-exports)."""
        home = _home_module(obj)
        if home is None:
            return
        if _denied(home) or not _under(home, packages + self.trusted):
            raise TargetRefused(f"is defined in {home}, which is not a package fxflow builds from here"
                                f"{self._trust_hint()}", accepted)

    def _packages(self, packages: tuple[str, ...]) -> str:
        return ", ".join([*packages, *self.trusted]) + " (or a package trusted outside the recipe)"

    def _trust_hint(self) -> str:
        return (f"; a package of your own is trusted outside the recipe: `[tool.fxflow] trusted_packages` in "
                f"pyproject.toml (found from the working folder) or {ENV_VAR}=pkg1,pkg2")


def _denied(path: str) -> bool:
    if path.split(".")[0] in DENIED_PACKAGES:
        return True
    return _under(path, DENIED_TORCH)


def _under(path: str, packages: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in packages)


def _home_module(obj: Any) -> str | None:
    """Where a class or Python function was defined; None for objects that do not say."""
    if isinstance(obj, (type, types.FunctionType)):
        return getattr(obj, "__module__", None)
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else None


def _import_object(path: str, accepted: str) -> Any:
    """Import the longest module prefix of `path` and fetch the rest as attributes."""
    parts = path.split(".")
    module = None
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name != name and not name.startswith(exc.name + "."):
                raise TargetRefused(f"cannot be imported: {type(exc).__name__}: {exc}", accepted) from None
            continue
        except Exception as exc:  # noqa: BLE001 - a trusted module that fails to import is a config problem
            raise TargetRefused(f"cannot be imported: {type(exc).__name__}: {first_line(exc)}", accepted) from None
    if module is None:
        raise TargetRefused("cannot be imported: no module of that name", accepted)
    obj: Any = module
    for index, part in enumerate(parts[end:], start=end):
        if type(obj) is types.ModuleType and part not in vars(obj):  # a module's __getattr__ may import
            raise TargetRefused(f"cannot be imported: {'.'.join(parts[:index])} has no '{part}'", accepted)
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetRefused(f"cannot be imported: {'.'.join(parts[:index])} has no '{part}'", accepted) from None
        if isinstance(obj, types.ModuleType):  # another module, reached through an attribute (`pkg.torch.load`)
            raise TargetRefused(f"reaches the module {obj.__name__} through {'.'.join(parts[:index])}; a name is "
                                "judged by where it is defined, so write that module's own path", accepted)
    return obj


def _kind_of(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return f"class ({obj.__module__}.{obj.__qualname__})"
    if isinstance(obj, types.FunctionType):
        return "function"
    return type(obj).__name__


def _walk(path: Any, roots: tuple[str, ...], accepted: str) -> Any:
    """The object a dotted name reaches from an already imported root module, attribute by
    attribute; a step that would import a module (a lazy submodule) is refused, not taken."""
    if not isinstance(path, str) or not path:
        raise TargetRefused("is required: name a function", accepted)
    if not DOTTED.fullmatch(path):
        raise TargetRefused("is not a dotted path of public names (module.name)", accepted)
    parts = path.split(".")
    if any(part.startswith("_") for part in parts):
        raise TargetRefused("names a private object (a part starts with '_')", accepted)
    if parts[0] not in roots:
        raise TargetRefused(f"does not start with {' or '.join(roots)}", accepted)
    obj: Any = importlib.import_module(parts[0])  # a root: operator, math or torch, never a name from the config
    for end, part in enumerate(parts[1:], start=2):
        if type(obj) is types.ModuleType and part not in vars(obj):  # a module's __getattr__ may import
            raise TargetRefused(f"cannot be imported: {'.'.join(parts[:end - 1])} has no '{part}' loaded "
                                "(fxflow imports nothing to find a function)", accepted)
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: BLE001 - any failure to fetch is a name that does not resolve
            raise TargetRefused(f"cannot be imported: {'.'.join(parts[:end - 1])} has no '{part}'", accepted) from None
    return obj


def _torch() -> Any:
    """torch, imported when a target is first judged: the verbs that only read configs (ls,
    --help, --cfg, shell completion) never judge one and start in a third of the time."""
    import torch

    return torch


@lru_cache(maxsize=1)
def _graph_functions() -> frozenset[int]:
    """The ids of every function a graph node may call (see the module docstring)."""
    allowed: list[Any] = [getattr(operator, name) for name in OPERATOR_FUNCTIONS]
    allowed += [f for name, f in vars(math).items() if callable(f) and not name.startswith("_")]
    for fn in _torch().overrides.get_testing_overrides():
        module = getattr(fn, "__module__", None) or ""
        name = getattr(fn, "__name__", "")
        if module.startswith(("torch.distributed", "torch.nn.init")) or name in TENSOR_METHODS_OUTSIDE:
            continue
        allowed.append(fn)
    return frozenset(id(f) for f in allowed)


def _describe(obj: Any) -> str:
    """What a name resolved to, by its own module and name (not the path written)."""
    ops = sys.modules["torch"]._ops if "torch" in sys.modules else None  # an operator exists only once torch is in
    if ops is not None and isinstance(obj, (ops.OpOverload, ops.OpOverloadPacket)):
        return f"the operator torch.ops.{obj}"
    if isinstance(obj, types.ModuleType):
        return f"the module {obj.__name__}"
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    module = getattr(obj, "__module__", None) or getattr(type(owner), "__module__", None) or type(obj).__module__
    return f"{module}.{name}"
