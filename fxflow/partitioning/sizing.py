"""Size every node in one pass: the same `node.size_bytes` as torch's `get_size_of_all_nodes`.

torch's `graph_manipulation.get_size_of_all_nodes` rebuilds `dict(gm.named_modules())` for
every `call_module` node, which makes sizing quadratic in graph size (seconds at a few
thousand nodes). Here shape propagation runs once, the module table is built once, and each
module's parameter count is taken once::

    size_nodes(gm, [x])            # runs the example inputs through the graph (`OutputShapes`)
    size_nodes(gm)                 # reuses tensor_meta that an earlier ShapeProp left

Each node gets `size_bytes(output_size, total_size)` with total = (parameters of the called
module + output elements) * element size of the output dtype, exactly as torch computes it.

The shapes come from `OutputShapes`, torch's `Interpreter` keeping each node's output shape,
dtype, stride and quantized flag in `node.meta["tensor_meta"]` (torch's `TensorMetadata`).
torch's `ShapeProp` records the same and also works out each output's memory format and
quantization parameters, which sizing never reads: that takes half its time (2.5 s of 5 at
100,000 nodes), so it is left out.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.fx import GraphModule, Interpreter, Node
from torch.fx.node import map_aggregate
from torch.fx.passes.graph_manipulation import size_bytes
from torch.fx.passes.shape_prop import TensorMetadata


class OutputShapes(Interpreter):
    """Run the graph on example inputs and keep each node's output shape, dtype, stride and
    quantized flag in `node.meta["tensor_meta"]` (memory format and qparams are left empty).

    Leaner than torch's `Interpreter.run_node`, which enters a context manager per node (for
    tracebacks it does not need here; a failing node is named below instead) and looks each
    called module up by walking its dotted path: together more than half of the run at
    100,000 nodes. The run is under `torch.no_grad()`: sizes do not depend on autograd, and
    building the autograd graph of every node costs a third more (so `requires_grad` in the
    metadata is False).
    """

    def run(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return super().run(*args, **kwargs)

    def run_node(self, n: Node) -> Any:
        try:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            result = getattr(self, n.op)(n.target, args, kwargs)
        except Exception as exc:
            raise RuntimeError(f"sizing ran node '{n.name}' ({n.format_node()}) on the example inputs: {exc}") from exc
        if isinstance(result, torch.Tensor):  # the common case, without walking a structure
            n.meta["tensor_meta"] = _metadata(result)
        else:
            found = []
            described = map_aggregate(result, lambda v: found.append(v) or _metadata(v) if isinstance(v, torch.Tensor) else v)
            if found:
                n.meta["tensor_meta"] = described
        n.meta["type"] = type(result)
        return result

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        return self.submodules[target](*args, **kwargs)


def _metadata(t: torch.Tensor) -> TensorMetadata:
    return TensorMetadata(t.shape, t.dtype, t.requires_grad, t.stride(), None, t.is_quantized, {})


def size_nodes(gm: GraphModule, inputs: Sequence[Any] | None = None) -> None:
    """Set `node.size_bytes` on every node before the output node (linear time)."""
    if inputs is not None:
        shapes = OutputShapes(gm)
        shapes.run(*inputs)
        modules = shapes.submodules  # the module table the run built
    else:
        modules = dict(gm.named_modules())
    param_elems: dict[str, int] = {}
    elem_size: dict[tuple[torch.dtype, bool], int] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            break
        meta = node.meta.get("tensor_meta")
        if not meta:
            raise RuntimeError(f"Node {node} has no tensor metadata associated with it! Check that shape propagation has run.")
        if not hasattr(meta, "shape"):
            raise RuntimeError(f"Node {node} does not produce a single tensor ({type(meta).__name__}); it cannot be sized")
        elems = meta.shape.numel()
        if node.op == "call_module":
            if node.target not in param_elems:
                param_elems[node.target] = sum(p.numel() for _, p in modules[node.target].named_parameters())
            total = elems + param_elems[node.target]
        else:
            total = elems
        key = (meta.dtype, bool(meta.is_quantized))
        if key not in elem_size:
            elem_size[key] = _element_size(*key)
        per = elem_size[key]
        node.size_bytes = size_bytes(per * elems, per * total)


def _element_size(dtype: torch.dtype, quantized: bool) -> int:
    if quantized:
        return torch._empty_affine_quantized([], dtype=dtype).element_size()
    return torch.tensor([], dtype=dtype).element_size()
