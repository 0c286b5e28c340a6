"""Split a request into micro-batches along the batch dimension, and put their outputs back together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.utils._pytree as pytree


def batch_inputs(inputs: Mapping[str, Any], names: Sequence[str] | None = None) -> list[str]:
    """The inputs to split: `names`, or every tensor input whose dim 0 equals the first tensor input's."""
    if names is not None:
        unknown = sorted(set(names) - set(inputs))
        if unknown:
            raise KeyError(f"split inputs {unknown} are not inputs of the module ({list(inputs)})")
        return list(names)
    tensors = [(k, v) for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.dim() > 0]
    if not tensors:
        return []
    batch = tensors[0][1].shape[0]
    return [k for k, v in tensors if v.shape[0] == batch]


def split_batch(inputs: Mapping[str, Any], count: int, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """`count` input dicts, each with a slice (dim 0) of the batch inputs and every other input whole."""
    chosen = batch_inputs(inputs, names)
    if not chosen:
        raise ValueError("no input has a batch dimension to split into micro-batches")
    sizes = {inputs[k].shape[0] for k in chosen}
    if len(sizes) != 1 or min(sizes) < count:
        raise ValueError(f"cannot split batch inputs {chosen} (dim 0 sizes {sorted(sizes)}) into {count} micro-batches")
    pieces = {k: torch.tensor_split(inputs[k], count, dim=0) for k in chosen}
    return [{k: pieces[k][i] if k in pieces else v for k, v in inputs.items()} for i in range(count)]


def merge_batches(outputs: Sequence[Any]) -> Any:
    """Concatenate micro-batch outputs leaf by leaf along dim 0; other leaves must agree."""
    flat = [pytree.tree_flatten(o) for o in outputs]
    spec = flat[0][1]
    if any(s != spec for _, s in flat):
        raise ValueError("micro-batch outputs differ in structure")
    merged = []
    for leaves in zip(*(leaves for leaves, _ in flat)):
        if isinstance(leaves[0], torch.Tensor):
            if leaves[0].dim() == 0:
                raise ValueError("a scalar tensor output cannot be joined along a batch dimension")
            merged.append(torch.cat(leaves, dim=0))
        elif all(leaf == leaves[0] for leaf in leaves):
            merged.append(leaves[0])
        else:
            raise ValueError(f"non-tensor output differs between micro-batches: {leaves}")
    return pytree.tree_unflatten(merged, spec)
