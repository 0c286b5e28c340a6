"""Where the shipped configs and recipes live, in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


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
