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
4. after import, the object is what the key asks for (an `nn.Module` subclass, a registered
   factory or a Python function to trace; a subclass of the component's kind; a graph function),
   and the module it was defined in passes 2 and 3 too, so a re-export cannot smuggle one in.

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
import os
import re
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from hydra.utils import instantiate

from fxflow.config.errors import first_line

DOTTED = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
ENV_VAR = "FXFLOW_TRUSTED_PACKAGES"

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
# operator's dispatchers call or fetch whatever their arguments name.
DENIED_GRAPH_FUNCTIONS = frozenset({"operator.call", "operator.methodcaller", "operator.attrgetter",
                                    "operator.itemgetter"})

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
    def from_environment(cls, cwd: Path | None = None, environ: dict[str, str] | None = None) -> "TargetPolicy":
        """Trusted packages from `FXFLOW_TRUSTED_PACKAGES` and the nearest pyproject.toml's `[tool.fxflow]`."""
        environ = os.environ if environ is None else environ
        entries: list[tuple[str, str]] = []
        if environ.get(ENV_VAR):
            entries += [(name, ENV_VAR) for name in re.split(r"[,\s:]+", environ[ENV_VAR]) if name]
        pyproject = _nearest_pyproject(cwd or Path.cwd())
        if pyproject is not None:
            entries += [(name, str(pyproject)) for name in _pyproject_trusted(pyproject)]
        trusted, sources, ignored = [], [], []
        for name, source in entries:
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*", name):
                ignored.append(f"{name!r} from {source} (not a dotted package name)")
            elif _denied(name):
                ignored.append(f"{name!r} from {source} (on the deny list; it cannot be trusted)")
            else:
                trusted.append(name)
                sources.append(source)
        return cls(tuple(dict.fromkeys(trusted)), tuple(dict.fromkeys(sources)), tuple(ignored))

    # ------------------------------------------------------------------ the three kinds

    def model(self, path: Any) -> ModelTarget:
        """A model or reference: an nn.Module subclass, a registered factory, or a function to trace."""
        accepted = ("an nn.Module subclass, a @model_factory function or a Python function to trace, from "
                    + self._packages(MODEL_PACKAGES))
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
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

    def module_class(self, path: Any) -> type:
        """An nn.Module class named as data (a tracer's leaf modules)."""
        accepted = "an nn.Module class from " + self._packages(MODEL_PACKAGES)
        obj = self._locate(path, MODEL_PACKAGES, accepted)
        if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
            raise TargetRefused(f"is not an nn.Module class (it is a {_kind_of(obj)})", accepted)
        self._check_home(obj, MODEL_PACKAGES, accepted)
        return obj

    def graph_function(self, path: Any) -> Callable[..., Any]:
        """A function a graph node may call: from operator, math or torch only (never widened by trust)."""
        accepted = "a function from operator, math or torch, e.g. operator.mul or torch.relu"
        if isinstance(path, str) and path in DENIED_GRAPH_FUNCTIONS:
            raise TargetRefused("calls or fetches whatever its arguments name", accepted)
        obj = self._locate(path, GRAPH_FUNCTION_PACKAGES, accepted, trust=False, allow_operator=True)
        if isinstance(obj, type) or not callable(obj) or isinstance(obj, types.ModuleType):
            raise TargetRefused(f"is not a function (it is a {_kind_of(obj)})", accepted)
        home = _home_module(obj)
        if home is not None and (_denied(home, allow_operator=True)
                                 or not _under(home.replace("_operator", "operator"), GRAPH_FUNCTION_PACKAGES)):
            raise TargetRefused(f"is defined in {home}, which a config may not name", accepted)
        return obj

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

    def _locate(self, path: Any, packages: tuple[str, ...], accepted: str, trust: bool = True,
                allow_operator: bool = False) -> Any:
        """Check the name, then import and fetch the object; TargetRefused on any failure."""
        if not isinstance(path, str) or not path:
            raise TargetRefused("is required: name what to build", accepted)
        if not DOTTED.fullmatch(path):
            raise TargetRefused("is not a dotted import path of public names (package.module.Name)", accepted)
        if any(part.startswith("_") for part in path.split(".")):
            raise TargetRefused("names a private object (a part starts with '_')", accepted)
        if _denied(path, allow_operator=allow_operator):
            raise TargetRefused("is in a package a config may never name (process, file, import, network or "
                                "code-loading modules); no setting allows it", accepted)
        allowed = packages + (self.trusted if trust else ())
        if not _under(path, allowed):
            hint = self._trust_hint() if trust else ""
            raise TargetRefused(f"is not from a package fxflow builds from here{hint}", accepted)
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


def _denied(path: str, allow_operator: bool = False) -> bool:
    root = path.split(".")[0]
    if root in DENIED_PACKAGES and not (allow_operator and root in ("operator", "_operator")):
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
    for part in parts[end:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetRefused(f"cannot be imported: {'.'.join(parts[:end])} has no '{part}'", accepted) from None
    return obj


def _kind_of(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return f"class ({obj.__module__}.{obj.__qualname__})"
    if isinstance(obj, types.FunctionType):
        return "function"
    return type(obj).__name__


def _nearest_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _pyproject_trusted(path: Path) -> list[Any]:
    """`[tool.fxflow] trusted_packages` of one pyproject.toml; [] when absent or unreadable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    value = data.get("tool", {}).get("fxflow", {}).get("trusted_packages", [])
    return list(value) if isinstance(value, list) else []
