"""Config problems, collected and reported together with their dotted config paths."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from fxflow.config.renamed import renamed


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the composed config: where, what was given, what is accepted."""

    path: str
    message: str
    value: Any = None
    accepted: str = ""

    def render(self) -> str:
        text = f"{self.path or '<root>'}: {self.message}"
        if self.value is not None:
            text += f" (got {_short(self.value)})"
        if self.accepted:
            text += f"; accepted: {self.accepted}"
        return text


class ConfigError(Exception):
    """Raised once, after validation, with every problem found."""

    def __init__(self, problems: Iterable[ConfigProblem], recipe: str = "", files: Iterable[str] = ()):
        self.problems = list(problems)
        self.recipe = recipe
        self.files = list(files)
        super().__init__(self.render())

    def render(self) -> str:
        where = f" of recipe '{self.recipe}'" if self.recipe else ""
        head = f"the config{where} has {len(self.problems)} problem(s)"
        if self.files:
            head += f" (files: {', '.join(self.files)})"
        return head + ":\n" + "\n".join(f"  - {p.render()}" for p in self.problems)


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type's name when it has no text): the part a message quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join_path(*parts: Any) -> str:
    return ".".join(str(p) for p in parts if p not in ("", None))


def closest(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The few names most like `word` (difflib's ratio, best first): what a typo most likely meant."""
    return difflib.get_close_matches(str(word), [str(o) for o in options], n=n)


def did_you_mean(word: str, options: Iterable[str], n: int = 3) -> str:
    """` (did you mean 'mode'?)`, or with several close names ` (did you mean 'a', 'b' or 'c'?)`; ''
    when nothing is close. A typo gets the few names it was near, not the whole list."""
    close = [f"'{name}'" for name in closest(word, options, n)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]
    return f" (did you mean {listed}?)"


def choice_hint(value: Any, expected: str) -> str:
    """For pydantic's `Input should be 'a', 'b' or 'c'`: the closest of the quoted names."""
    import re

    return did_you_mean(str(value), re.findall(r"'([^']*)'", expected)) if isinstance(value, str) else ""


def problems_from_validation(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[ConfigProblem]:
    """Turn pydantic's error list into Problems with full dotted paths and accepted values."""
    problems = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"]]
        field = (item.get("ctx") or {}).get("field")
        if isinstance(field, str):  # a model-level rule about one field names that field
            loc.append(field)
        path = join_path(prefix, *loc)
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            fields = _fields_at(model, loc[:-1]) if model else []
            hint = did_you_mean(loc[-1], fields)
            # the whole list only when nothing is close and it is short enough to read
            listed = ", ".join(fields) if fields and not hint and len(fields) <= _LISTED else ""
            problems.append(ConfigProblem(path, f"unknown key{hint}", None, listed))
        elif kind == "missing":
            problems.append(ConfigProblem(path, "is required but missing"))
        elif kind == "literal_error":
            expected = str((item.get("ctx") or {}).get("expected", ""))
            problems.append(ConfigProblem(path, item["msg"] + choice_hint(value, expected), value))
        else:
            problems.append(ConfigProblem(path, item["msg"], value))
    return problems


_LISTED = 12  # names listed in full when none is close to what was written


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model reached by following loc; [] where unknown."""
    current: Any = model
    for part in loc:
        if _is_model(current):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = _unwrap_optional(field.annotation)
        else:  # a mapping or a list: `part` is a key or index, step into the value type
            args = getattr(current, "__args__", ())
            current = _unwrap_optional(args[-1]) if args else None
    return list(current.model_fields) if _is_model(current) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap_optional(tp: Any) -> Any:
    """`Model | None` -> Model; containers and plain types are returned as they are."""
    args = getattr(tp, "__args__", ())
    origin = getattr(tp, "__origin__", None)
    if origin in (dict, list) or not args:
        return tp
    models = [a for a in args if _is_model(a)]
    return models[0] if models else tp


# `Problem` was renamed `ConfigProblem` (fxflow.partitioning's Problem is the placement
# problem); the old name works for one release.
__getattr__ = renamed(__name__, Problem=ConfigProblem)
