"""Functions defined inside another function, as torch's tests define them inside a test method.

torch's `test_traceable_function_with_nonstandard_name` defines `foo` inside the test and traces it
with torch's `RewritingTracer`. Such a function's name is not a global of its module, which is the
case torch's rewriter handles (it executes the rewritten source into a copy of the module's globals
and takes the one name that appears). This module defines no global of that name on purpose.
"""

from __future__ import annotations

from typing import Callable

import torch

from fxflow.config.targets import model_factory


@model_factory
def nested_relu() -> Callable[[torch.Tensor], torch.Tensor]:
    """`foo(x) = relu(x)`, defined inside this factory (test_traceable_function_with_nonstandard_name)."""

    def foo(x):
        return torch.relu(x)

    return foo
