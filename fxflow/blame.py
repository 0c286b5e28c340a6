"""Who is at fault when the eager model fails on the declared inputs: the inputs, or the model.

When a step breaks, the runner calls the eager model on the declared inputs to find out whether
the fix belongs in `model.inputs` or in `model.module`. A failure alone does not say which: a
forward that raises from its own code (`raise RuntimeError(...)`, `assert ...`) fails on any
input, and telling its author to change the inputs sends them the wrong way.

The rule: the inputs are at fault when the exception comes from where arguments are checked —
the call does not bind to the forward's signature, or an operator refuses the tensors it was
handed (a shape or dtype mismatch raised by torch's C++ kernels, or by a `raise` inside torch's
own Python code). The model is at fault when the innermost frame is a `raise`/`assert` statement
in code outside torch: the model's own code decided to fail.
"""

from __future__ import annotations

import dis
from pathlib import Path
from types import CodeType, TracebackType

import torch

_TORCH = str(Path(torch.__file__).resolve().parent)
_RAISING = frozenset({"RAISE_VARARGS"})  # a raise statement; `assert` compiles to one too


def raised_by_model_code(exc: BaseException) -> bool:
    """Whether `exc` was raised by a raise/assert statement outside torch."""
    tb = exc.__traceback__
    if tb is None:
        return False
    last: TracebackType = tb
    while last.tb_next is not None:
        last = last.tb_next
    code = last.tb_frame.f_code
    if _opname(code, last.tb_lasti) not in _RAISING:
        return False  # raised by a callee written in C: an operator refusing its arguments
    return not str(Path(code.co_filename).resolve()).startswith(_TORCH)


def _opname(code: CodeType, offset: int) -> str:
    for instruction in dis.get_instructions(code):
        if instruction.offset == offset:
            return instruction.opname
    return ""
