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
    a hundred thousand rows; tabulate's type inference makes that seconds). Built column by column
    and formatted with one template, which is what keeps it well under a second at that size."""
    columns = [[str(c) for c in column] for column in zip(*rows)] if rows else [[] for _ in headers]
    widths = [max(len(h), max(map(len, column), default=0)) for h, column in zip(headers, columns)]
    template = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [template.format(*headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [template.format(*row) for row in zip(*columns)]
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
