"""Type expressions written in config (`List[int]`, `Optional[List[torch.Tensor]]`,
`create_type_hint([int, int])`, `type(torch.float)`), parsed without evaluating code.

The text is parsed with `ast` and only these forms are accepted: a name from `NAMES`, a
subscript of a typing constructor, `create_type_hint` of a list or tuple of types, and `type(V)`
of a value from `VALUES`. Nothing is imported, looked up by attribute or called otherwise.

    parse_type("Optional[List[torch.Tensor]]")   # typing.Optional[typing.List[torch.Tensor]]
    parse_type("__import__('os')")               # TypeExpressionError
"""

from __future__ import annotations

import ast
import numbers
import typing
from typing import Any

import torch
from torch.fx.operator_schemas import create_type_hint

NAMES: dict[str, Any] = {
    "int": int, "float": float, "bool": bool, "str": str, "complex": complex, "None": type(None),
    "list": list, "tuple": tuple, "dict": dict,
    "Any": typing.Any, "List": typing.List, "Tuple": typing.Tuple, "Dict": typing.Dict,  # noqa: UP006
    "Optional": typing.Optional, "Union": typing.Union, "Sequence": typing.Sequence,
    "numbers.Number": numbers.Number, "Number": numbers.Number,
    "torch.Tensor": torch.Tensor, "torch.nn.Parameter": torch.nn.Parameter, "torch.dtype": torch.dtype,
    "torch.device": torch.device, "torch.Size": torch.Size, "torch.layout": torch.layout,
    "torch.memory_format": torch.memory_format,
}
VALUES: dict[str, Any] = {  # values whose type `type(V)` may name
    "torch.float": torch.float, "torch.float32": torch.float32, "torch.int64": torch.int64,
    "torch.strided": torch.strided, "torch.contiguous_format": torch.contiguous_format,
}


class TypeExpressionError(ValueError):
    """The text is not a type expression of the accepted forms."""


def parse_type(text: str) -> Any:
    """The type `text` denotes; TypeExpressionError naming the part that is not accepted."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise TypeExpressionError(f"'{text}' is not an expression: {exc.msg}") from None
    return _type(tree.body, text)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _type(node: ast.AST, text: str) -> Any:
    name = _dotted(node)
    if name is not None:
        if name not in NAMES:
            raise TypeExpressionError(f"'{name}' in '{text}' is not a known type; known: {', '.join(NAMES)}")
        return NAMES[name]
    if isinstance(node, ast.Subscript):
        base = _type(node.value, text)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        params = tuple(_type(item, text) for item in items)
        return base[params if len(params) > 1 else params[0]]
    if isinstance(node, ast.Call) and not node.keywords and len(node.args) == 1:
        func = _dotted(node.func)
        arg = node.args[0]
        if func == "create_type_hint" and isinstance(arg, (ast.List, ast.Tuple)):
            items = [_type(item, text) for item in arg.elts]
            return create_type_hint(items if isinstance(arg, ast.List) else tuple(items))
        if func == "type" and _dotted(arg) in VALUES:
            return type(VALUES[_dotted(arg)])
    raise TypeExpressionError(f"'{ast.unparse(node)}' in '{text}' is not an accepted type form: a known name, "
                              "a subscript such as List[int], create_type_hint([T, ...]) or type(torch.float)")
