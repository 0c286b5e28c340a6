"""Turn `ExportedProgram.module()` into a graph fxflow can size, partition and split.

fxflow sizes a graph node by node, and each node must yield one tensor (as torch's
`get_size_of_all_nodes` requires). An exported graph holds a few calls that yield none or several:

    gm = plain_signature(program.module(check_guards=False), ["input_ids"], "GPT2")  # forward(self, input_ids)
    tidy = {"metadata_asserts_removed": drop_metadata_asserts(gm),
            "regions_inlined": inline_disabled_regions(gm),
            "splits_sliced": splits_to_slices(gm)}

Each step leaves what the graph computes unchanged on the inputs it was exported for (the
equivalence checks then prove it against the eager model) and says how many nodes it touched, so
the trace facts show what was done.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.fx import GraphModule, Node

_ASSERT_METADATA = torch.ops.aten._assert_tensor_metadata.default
_SPLITS = (torch.ops.aten.split.Tensor, torch.ops.aten.split_with_sizes.default)


def plain_signature(gm: GraphModule, names: list[str], class_name: str) -> GraphModule:
    """An ordinary GraphModule with `forward(self, a, b)` returning the model's own output structure.

    `ExportedProgram.module()` flattens inputs and rebuilds outputs through a pytree code
    generator, and its hooks check every call against that input structure (keywords only);
    transforms that build a new module from the graph (`split_module`, the partitioner) use the
    plain code generator, and their module would then return the flat tuple instead of what the
    model returns. With tensor inputs only, each input is one placeholder in order, so the graph
    itself can take them by name and return the rebuilt output structure (tuples, lists and dicts
    of tensors; any other container type is refused with its name). The module returned is built
    afresh on the graph, without export's hooks.
    """
    info = getattr(gm.graph._codegen, "pytree_info", None)
    if info is None:
        return gm
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(names):
        raise TypeError(f"the exported graph has {len(placeholders)} inputs for {len(names)} declared (model.inputs)")
    for node, name in zip(placeholders, names):
        node.target = name
    output = gm.graph.output_node()
    rebuilt = pytree.tree_unflatten(list(output.args[0]), info.out_spec)
    if not _plain_structure(rebuilt):
        raise TypeError(f"the model returns {type(rebuilt).__name__}, which a graph output cannot hold; return a "
                        "tensor or a tuple, list or dict of tensors (wrap the model)")
    output.args = (rebuilt,)
    gm.graph._codegen = torch.fx.graph.CodeGen()
    return GraphModule(gm, gm.graph, class_name)


def _plain_structure(value: Any) -> bool:
    """A node, or a tuple/list/dict (exactly those types) of them."""
    if isinstance(value, Node):
        return True
    if type(value) in (tuple, list):
        return all(_plain_structure(v) for v in value)
    if type(value) is dict:
        return all(_plain_structure(v) for v in value.values())
    return False


def drop_metadata_asserts(gm: GraphModule) -> int:
    """Remove `aten._assert_tensor_metadata` calls (export's record that a `.to()` found the dtype and
    device it was traced with): they yield nothing, and with the static shapes and dtypes of an
    exported graph they hold by construction."""
    found = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is _ASSERT_METADATA and not n.users]
    for node in found:
        gm.graph.erase_node(node)
    if found:
        gm.recompile()
    return len(found)


def inline_disabled_regions(gm: GraphModule) -> int:
    """Inline the subgraphs of `with torch.autocast(..., enabled=False)` and `torch.set_grad_enabled(False)`
    blocks (export wraps them in `wrap_with_autocast` / `wrap_with_set_grad_enabled`, whose tuple
    output cannot be sized). Outside any enclosing autocast, and with fxflow's checks running without
    gradients, such a block computes exactly its body; a region that turns autocast or gradients
    ON is refused, since inlining would change what it computes."""
    from torch._higher_order_ops.wrap import wrap_with_autocast, wrap_with_set_grad_enabled

    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in (wrap_with_autocast, wrap_with_set_grad_enabled):
            continue
        if node.target is wrap_with_autocast:
            enabled, body, operands = node.args[2], node.args[4], node.args[5:]
        else:
            enabled, body, operands = node.args[0], node.args[1], node.args[2:]
        if enabled:
            raise TypeError(f"the exported graph turns {node.target.__name__[len('wrap_with_'):]} on inside the "
                            f"model ({node.name}); fxflow runs and checks graphs without it, so it cannot inline it")
        _inline(gm, node, getattr(gm, body.target), operands)
        if not body.users:
            gm.graph.erase_node(body)
            delattr(gm, body.target)
        count += 1
    if count:
        gm.graph.lint()
        gm.recompile()
    return count


def _inline(gm: GraphModule, call: Node, body: GraphModule, operands: tuple[Any, ...]) -> None:
    """Copy `body`'s nodes in place of `call`; `call[i]` readers then read the body's i-th output."""
    placeholders = [n for n in body.graph.nodes if n.op == "placeholder"]
    env: dict[Node, Any] = dict(zip(placeholders, operands))
    with gm.graph.inserting_before(call):
        for node in body.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                outputs = node.args[0]
                break
            if node.op == "get_attr":  # the body's own constants move to the parent under a fresh name
                name = f"{call.name}_{node.target.replace('.', '_')}"
                setattr(gm, name, getattr(body, node.target))
                env[node] = gm.graph.get_attr(name)
            else:
                env[node] = gm.graph.node_copy(node, lambda n: env[n])
    results = pytree.tree_map(lambda v: env[v] if isinstance(v, Node) else v, outputs)
    for user in list(call.users):
        if not (user.op == "call_function" and user.target is operator.getitem):
            raise TypeError(f"{call.name}'s result is used whole by {user.name}; only item reads can be inlined")
        user.replace_all_uses_with(results[user.args[1]])
        gm.graph.erase_node(user)
    gm.graph.erase_node(call)


def splits_to_slices(gm: GraphModule) -> int:
    """Replace `x.split(...)`'s items by `aten.slice` views of `x`: a split yields a list, which cannot
    be sized, while each slice is one tensor with the same values (GPT-2 splits its fused
    query/key/value projection this way). A split whose list is used other than item by item stays."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in _SPLITS:
            continue
        if not all(u.op == "call_function" and u.target is operator.getitem for u in node.users):
            continue
        source, sizes_arg = node.args[0], node.args[1]
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        length = source.meta["val"].shape[dim]
        sizes = ([sizes_arg] * -(-length // sizes_arg) if isinstance(sizes_arg, int) else list(sizes_arg))
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for user in list(node.users):
            i = user.args[1]
            with gm.graph.inserting_before(user):
                piece = gm.graph.call_function(torch.ops.aten.slice.Tensor,
                                               (source, dim, starts[i], min(starts[i] + sizes[i], length)))
            piece.meta.update(user.meta)
            user.replace_all_uses_with(piece)
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
        count += 1
    if count:
        gm.recompile()
    return count
