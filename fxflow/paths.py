"""Where configs and recipes live: the shipped ones (in a checkout or an installed wheel) and the user's.

A user keeps their own configs in a folder laid out like `conf/` plus a `recipes/` folder:

    fxflow_conf/                 found automatically in the folder fxflow runs from
      model/my_mlp.yaml
      devices/two_small.yaml
      recipes/my_mlp_split.yaml

`--config-dir DIR` names another such folder. User folders come first on the search path, so a
file there replaces a shipped file of the same group and name (that is what `fxflow cp` relies on).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

_PACKAGE_DIR = Path(__file__).resolve().parent

USER_FOLDER = "fxflow_conf"  # looked for in the current working folder
_config_dirs: list[Path] = []  # folders named by --config-dir in this process


def resource_dir(name: str) -> Path:
    """Return the `conf` or `recipes` folder.

    A wheel carries them inside the package (`fxflow/conf`); a checkout or an editable
    install keeps them at the top level beside the package, where reviewers read them.
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"fxflow cannot find its '{name}' folder next to {_PACKAGE_DIR}")


def conf_dir() -> Path:
    return resource_dir("conf")


def recipes_dir() -> Path:
    return resource_dir("recipes")


def set_config_dirs(folders: Iterable[str | Path]) -> None:
    """The folders given with --config-dir, highest precedence first."""
    _config_dirs[:] = [Path(f).resolve() for f in folders]


@contextmanager
def config_dirs(folders: Iterable[str | Path]) -> Iterator[None]:
    """`set_config_dirs` for the length of a block (in-process composition, tests)."""
    before = list(_config_dirs)
    set_config_dirs(folders)
    try:
        yield
    finally:
        _config_dirs[:] = before


def user_config_dirs() -> list[Path]:
    """The user's config folders, highest precedence first: --config-dir folders, then ./fxflow_conf."""
    folders = list(_config_dirs)
    local = (Path.cwd() / USER_FOLDER).resolve()
    if local.is_dir() and local not in folders:
        folders.append(local)
    return folders


def search_dirs() -> list[Path]:
    """Every folder group files are looked up in, highest precedence first."""
    return [*user_config_dirs(), conf_dir()]


def recipe_dirs() -> list[Path]:
    """Every folder recipes are looked up in, highest precedence first."""
    return [*(d / "recipes" for d in user_config_dirs() if (d / "recipes").is_dir()), recipes_dir()]


def shown(path: Path) -> str:
    """A path as people should read it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
