"""Which of the user's packages fxflow may import, who said so, and where their code is found.

Trust never comes from a config: it comes from the environment (`FXFLOW_TRUSTED_PACKAGES`,
comma-separated) or from `[tool.fxflow] trusted_packages` in the nearest pyproject.toml at or
above the working folder (the folder fxflow was started in, also when `hydra.job.chdir=true`
moves a job elsewhere). Trusting a package runs its code in this process, so every command
that trusts one says once where the trust came from (`Trust.announcement`), and the run
record keeps the same (`Trust.record`).

The working folder is not on `sys.path` ahead of installed libraries: a `networkx.py` lying
there must not replace the real one. `working_folder_off_path` takes it off the front when
fxflow starts, and `user_code_on_path` appends it at the end only when a trusted package is
imported, so the user's own model packages still resolve from where they work.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

ENV_VAR = "FXFLOW_TRUSTED_PACKAGES"
PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Trust:
    """Trusted package names, each with the place that trusted it, and the entries refused."""

    origins: tuple[tuple[str, str], ...] = ()  # (package, source: a pyproject.toml path or ENV_VAR)
    ignored: tuple[str, ...] = ()  # entries refused, with the reason

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.origins)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(source for _, source in self.origins))

    @classmethod
    def from_environment(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None,
                         refuse: Any = None) -> "Trust":
        """Read the env var and the nearest pyproject.toml; `refuse(name)` says why a name may never
        be trusted (the target policy's deny list), or nothing."""
        environ = os.environ if environ is None else environ
        entries: list[tuple[Any, str]] = []
        if environ.get(ENV_VAR):
            entries += [(name, ENV_VAR) for name in re.split(r"[,\s:]+", environ[ENV_VAR]) if name]
        pyproject = nearest_pyproject(cwd or working_folder())
        if pyproject is not None:
            entries += [(name, f"{pyproject} [tool.fxflow] trusted_packages") for name in _pyproject_trusted(pyproject)]
        origins: dict[str, str] = {}
        ignored = []
        for name, source in entries:
            if not isinstance(name, str) or not PACKAGE_NAME.fullmatch(name):
                ignored.append(f"{name!r} from {source} (not a dotted package name)")
            elif refuse is not None and refuse(name):
                ignored.append(f"{name!r} from {source} (on the deny list; it cannot be trusted)")
            else:
                origins.setdefault(name, source)
        return cls(tuple(origins.items()), tuple(ignored))

    def announcement(self) -> str | None:
        """One line for the terminal: what is trusted, by whom, and that its code runs; None if nothing is."""
        lines = []
        if self.origins:
            by_source: dict[str, list[str]] = {}
            for name, source in self.origins:
                by_source.setdefault(source, []).append(name)
            said = "; ".join(f"{', '.join(names)} from {source}" for source, names in by_source.items())
            lines.append(f"fxflow: trusting {said}: configs may name their code, which runs in this process")
        lines += [f"fxflow: not trusted: {entry}" for entry in self.ignored]
        return "\n".join(lines) or None

    def record(self) -> dict[str, str]:
        """package -> where its trust came from, for the run record."""
        return dict(self.origins)


def working_folder() -> Path:
    """The folder fxflow was started in: the current folder, unless Hydra moved this job into its
    run folder (hydra.job.chdir=true), then the folder Hydra started from."""
    here = Path.cwd()
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            runtime = HydraConfig.get().runtime
            if runtime.output_dir and Path(runtime.output_dir).resolve() == here.resolve():
                return Path(runtime.cwd)
    except Exception:  # noqa: BLE001 - outside a Hydra job there is no other folder to ask for
        pass
    return here


@contextmanager
def working_folder_off_path() -> Iterator[None]:
    """Take the working folder off the front of sys.path (where `python -m` puts it) for the length
    of a command; a folder named in PYTHONPATH stays where the user put it. Restored afterwards, so
    an in-process caller keeps its own path."""
    before = list(sys.path)
    here = os.getcwd()
    if sys.path and sys.path[0] in ("", ".", here):
        del sys.path[0]
    try:
        yield
    finally:
        sys.path[:] = before


def user_code_on_path() -> None:
    """Let a trusted package resolve from the working folder, after every installed library."""
    folder = str(working_folder())
    if folder not in sys.path and "" not in sys.path:
        sys.path.append(folder)


def nearest_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def trusted_setup_lines(cwd: Path | None = None) -> tuple[str, ...]:
    """The shell lines a cluster launcher may run before each job (`hydra.launcher.setup`, e.g.
    `module load cuda`): only those `[tool.fxflow] launcher_setup` lists in the nearest
    pyproject.toml, the same file that says which packages are trusted; never from a config."""
    pyproject = nearest_pyproject(cwd or working_folder())
    if pyproject is None:
        return ()
    return tuple(line for line in _pyproject_list(pyproject, "launcher_setup") if isinstance(line, str))


def _pyproject_trusted(path: Path) -> list[Any]:
    """`[tool.fxflow] trusted_packages` of one pyproject.toml; [] when absent or unreadable."""
    return _pyproject_list(path, "trusted_packages")


def _pyproject_list(path: Path, key: str) -> list[Any]:
    """`[tool.fxflow] KEY` of one pyproject.toml; [] when absent, not a list or unreadable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    tool = data.get("tool", {})
    section = tool.get("fxflow", {}) if isinstance(tool, dict) else {}
    value = section.get(key, []) if isinstance(section, dict) else []
    return list(value) if isinstance(value, list) else []
