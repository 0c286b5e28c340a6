"""Each stage's graph in the record: readable code and a node table."""

from __future__ import annotations

from torch.fx import GraphModule

from fxflow.record.writer import RunRecord


def node_table(gm: GraphModule) -> str:
    """One row per node: name, op, target, args, users, sizes when known."""
    rows = []
    for node in gm.graph.nodes:
        size = getattr(node, "size_bytes", None)
        rows.append(
            [
                node.name,
                node.op,
                _target_name(node.target),
                _short(node.args),
                _short(node.kwargs) if node.kwargs else "",
                len(node.users),
                size.output_size if size is not None else "",
                size.total_size if size is not None else "",
            ]
        )
    headers = ["name", "op", "target", "args", "kwargs", "users", "output_bytes", "total_bytes"]
    return markdown_table(headers, rows)


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table with aligned columns, in linear time (a graph's node table can have
    tens of thousands of rows; tabulate's type inference makes that seconds)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join(lines) + "\n"


def write_stage_graph(record: RunRecord, index: int, stage: str, gm: GraphModule) -> list[str]:
    """Write `graphs/NN_stage.py` (the module's code) and `graphs/NN_stage.nodes.md`; return the paths."""
    stem = f"graphs/{index:02d}_{stage}"
    code = f"# stage {index}: {stage} ({len(gm.graph.nodes)} nodes)\n" + gm.code
    for name, sub in gm.named_children():
        if isinstance(sub, GraphModule):
            code += f"\n\n# submodule {name}\n" + sub.code
    record.write_text(f"{stem}.py", code)
    record.write_text(f"{stem}.nodes.md", node_table(gm))
    return [f"{stem}.py", f"{stem}.nodes.md"]


def _target_name(target: object) -> str:
    return getattr(target, "__name__", None) or str(target)


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
