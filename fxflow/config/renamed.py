"""Old names that still import for one release, with a DeprecationWarning naming the new one.

Each word should have one meaning in the code, so classes that shared a name were renamed; a
module keeps its old name importable by setting `__getattr__ = renamed(__name__, Old=New)`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable


def renamed(module: str, **old_to_new: Any) -> Callable[[str], Any]:
    """A module `__getattr__` that answers each old name with its new object, warning once per use."""

    def __getattr__(name: str) -> Any:
        if name in old_to_new:
            new = old_to_new[name]
            warnings.warn(f"{module}.{name} is now {new.__name__}", DeprecationWarning, stacklevel=2)
            return new
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
