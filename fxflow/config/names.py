"""Names that become file and folder names (the recipe, transform names) and the recipe stand-in key.

Kept free of torch and pydantic so the command's start-up (`--help`, recipe registration)
stays light.
"""

from __future__ import annotations

import re
from typing import Any

SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
SAFE_NAME_RULE = "a letter, then up to 63 letters, digits, '_' or '-'"

# A recipe file that cannot be loaded is registered as a stand-in holding only its name and
# this key (fxflow.recipes); choosing it is a config problem that quotes the file and line.
BROKEN_RECIPE_KEY = "broken_recipe"


def safe_name_problem(name: Any) -> str | None:
    """Why `name` cannot be used as a file or folder name, or None when it can."""
    if isinstance(name, str) and SAFE_NAME.fullmatch(name):
        return None
    return f"is not a safe name for a file or folder: write {SAFE_NAME_RULE}"
