"""The partition picture, drawn from the partition facts and the graph the partitioner received.

Up to `node_limit` nodes it shows every node, coloured by partition, in columns that follow the
data flow (folded into bands, like lines of text, when the graph is long); above it, partitions
as boxes (node count, memory, devices) joined by the bytes they pass. Partition colours never
use red: red dashed edges are the ones that cross devices, where producer and consumer partitions
share no device.

    png = draw_partitions(gm, facts, node_limit=300)   # PNG bytes, or None without matplotlib
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from typing import Any

from torch.fx import GraphModule

from fxflow.reports.units import human_bytes

log = logging.getLogger("fxflow")

CROSSING = "#d62728"  # edges between partitions that share no device
OTHER = "#d9d9d9"  # inputs, constants and the output: nodes no partition computes
# Qualitative colours with reds and greys left out, so no partition looks like a crossing edge.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"]
_MAX_EDGE_LABELS = 24
_STEP, _HALF_W = 3.6, 1.35  # partition boxes: column step and half width, in axis units


@dataclass
class _Graph:
    """The graph as plain lists: node names, op kinds, output bytes, edges, partition of each node."""

    names: list[str]
    ops: list[str]
    out_bytes: list[int]
    edges: list[tuple[int, int]]
    owner: list[int | None]


def draw_partitions(gm: GraphModule, facts: dict[str, Any], node_limit: int = 300) -> bytes | None:
    """PNG bytes of the partition picture; None (and a log line) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        log.warning("no partition picture: %s is not installed (pip install matplotlib)", exc.name)
        return None
    graph = _graph(gm, facts)
    fig = _partition_level(plt, graph, facts) if len(graph.names) > node_limit else _node_level(plt, graph, facts)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)  # margins are set by hand: a "tight" box would draw twice
    plt.close(fig)
    return buffer.getvalue()


def colour(partition: int | None) -> str:
    return OTHER if partition is None else PALETTE[partition % len(PALETTE)]


def _graph(gm: GraphModule, facts: dict[str, Any]) -> _Graph:
    owner_of = {name: p["id"] for p in facts["partitions"] for name in p["compute_nodes"]}
    nodes = list(gm.graph.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    edges = [(index[node], index[user]) for node in nodes for user in node.users]
    sizes = [getattr(getattr(node, "size_bytes", None), "output_size", 0) or 0 for node in nodes]
    return _Graph([n.name for n in nodes], [n.op for n in nodes], sizes, edges, [owner_of.get(n.name) for n in nodes])


def _crosses(facts: dict[str, Any]) -> Any:
    """Whether data from partition a to partition b moves between devices (they share none)."""
    devices = {p["id"]: set(p["devices"]) for p in facts["partitions"]}
    return lambda a, b: a is not None and b is not None and a != b and not devices[a] & devices[b]


def _title(facts: dict[str, Any], extra: str) -> str:
    idle = facts.get("idle_devices") or []
    return (f"{facts['num_partitions']} partitions over {len(facts['devices'])} devices, {facts['mode']} mode{extra}"
            + (f"; idle: {', '.join(idle)}" if idle else ""))


# ----------------------------------------------------------------------------------------------- nodes


def _layers(graph: _Graph) -> list[int]:
    """Column of each node: longest path from an input; sources (constants) sit just before their first user."""
    count = len(graph.names)
    preds: list[list[int]] = [[] for _ in range(count)]
    users: list[list[int]] = [[] for _ in range(count)]
    for u, v in graph.edges:
        preds[v].append(u)
        users[u].append(v)
    depth = [0] * count
    for v in range(count):  # fx graphs are in topological order
        if preds[v]:
            depth[v] = 1 + max(depth[u] for u in preds[v])
    for v in range(count):
        if not preds[v] and users[v] and graph.ops[v] != "placeholder":
            depth[v] = max(0, min(depth[u] for u in users[v]) - 1)
    return depth


def _node_level(plt: Any, graph: _Graph, facts: dict[str, Any]) -> Any:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    depth = _layers(graph)
    layer_count = max(depth, default=0) + 1
    columns: list[list[int]] = [[] for _ in range(layer_count)]
    for node, d in enumerate(depth):
        columns[d].append(node)
    width = max(map(len, columns), default=1)
    # Fold a long graph into bands so the canvas is about 1.6 times as wide as it is high.
    bands = max(1, round(math.sqrt(layer_count / (0.64 * (width + 1))))) if layer_count > 24 else 1
    per_band = math.ceil(layer_count / bands)
    bands = math.ceil(layer_count / per_band)
    band_top, top = [], 0.0
    for band in range(bands):
        band_top.append(top)
        top += max(len(c) for c in columns[band * per_band:(band + 1) * per_band]) + 1.0
    total_rows = top - 1.0

    pos: dict[int, tuple[float, float]] = {}
    for d, column in enumerate(columns):
        # Grouped by partition, so each partition reads as a block of one colour.
        column.sort(key=lambda n: (graph.owner[n] if graph.owner[n] is not None else -1, n))
        band, x = divmod(d, per_band)
        for row, node in enumerate(column):
            pos[node] = (float(x), -(band_top[band] + row))

    fig_w = min(max(1.05 * per_band + 1.0, 6.0), 22.0)
    fig_h = min(max(0.42 * (total_rows + 1) + 0.8, 2.5), 16.0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    cell_w = fig_w * 72 * 0.9 / max(per_band, 1)
    cell_h = fig_h * 72 * 0.85 / (total_rows + 1)
    font = max(4.0, min(8.0, cell_h * 0.42))
    chars = max(4, int(cell_w * 0.85 / (0.6 * font)))
    lines = 2 if cell_h >= 2.6 * font else 1

    crosses = _crosses(facts)
    local, far, crossing = [], [], []
    for u, v in graph.edges:
        path = _route(pos[u], pos[v])
        if crosses(graph.owner[u], graph.owner[v]):
            crossing.append((u, path))
        elif pos[v][0] < pos[u][0]:
            far.append(path)  # continues on the next band
        else:
            local.append(path)
    ax.add_collection(LineCollection(local, colors="#7f7f7f", linewidths=0.7, zorder=1))
    ax.add_collection(LineCollection(far, colors="#7f7f7f", linewidths=0.5, alpha=0.35, zorder=1))
    ax.add_collection(LineCollection([path for _, path in crossing], colors=CROSSING, linewidths=1.6,
                                     linestyles="dashed", zorder=2))
    if len(crossing) <= _MAX_EDGE_LABELS:
        for u, path in crossing:
            (x0, y0), (x1, y1) = path[len(path) // 2 - 1], path[len(path) // 2]
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{graph.out_bytes[u]} B", color=CROSSING, fontsize=font * 0.9,
                    ha="center", va="center", zorder=4,
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    for node, (x, y) in pos.items():
        ax.text(x, y, fit_label(graph.names[node], chars, lines), ha="center", va="center", fontsize=font, zorder=3,
                bbox={"boxstyle": "round,pad=0.25", "facecolor": colour(graph.owner[node]), "edgecolor": "#404040",
                      "linewidth": 0.5, "alpha": 0.95})
    ax.set_xlim(-0.6, per_band - 0.4)
    ax.set_ylim(-total_rows - 0.6, 0.6)
    ax.axis("off")
    folded = f"; {len(graph.names)} nodes, data flows left to right" + (f" in {bands} bands" if bands > 1 else "")
    ax.set_title(_title(facts, folded), fontsize=10)
    handles = _partition_handles(Patch, facts)
    handles.append(Patch(facecolor=OTHER, edgecolor="#404040", label="inputs, constants, output"))
    total = sum(graph.out_bytes[u] for u, _ in crossing)
    handles.append(Line2D([], [], color=CROSSING, linestyle="--", linewidth=1.6,
                          label=f"data between devices ({len(crossing)} edges, {total} B)"))
    _margins(fig, ax, handles, ncol=4)
    return fig


def _margins(fig: Any, ax: Any, handles: list[Any], ncol: int) -> None:
    """Fill the canvas: the title in a thin top margin, the legend in a bottom margin sized to its rows."""
    height = fig.get_figheight()
    rows = math.ceil(len(handles) / ncol)
    bottom = (0.22 * rows + 0.15) / height
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.4 / height, bottom=bottom)
    fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.02 / height))


def _route(start: tuple[float, float], end: tuple[float, float]) -> list[tuple[float, float]]:
    """A straight edge between neighbouring columns; an edge that skips columns bends just above
    the rows between, so it never runs through the nodes it passes."""
    (x0, y0), (x1, y1) = start, end
    if x1 - x0 <= 1:
        return [start, end]
    return [start, (x0 + 0.5, y0 + 0.5), (x1 - 0.5, y1 + 0.5), end]


def fit_label(name: str, chars: int, lines: int = 1) -> str:
    """The name whole if it fits; else split at '_' over two lines; else shortened in the middle."""
    if len(name) <= chars:
        return name
    if lines >= 2:
        cut = [i for i, ch in enumerate(name) if ch in "_."]
        best = min(cut, key=lambda i: abs(i - len(name) / 2), default=None)
        if best is not None and max(best + 1, len(name) - best - 1) <= chars:
            return name[: best + 1] + "\n" + name[best + 1:]
    keep = max(chars - 1, 2)
    return name[: keep - keep // 2] + "…" + name[len(name) - keep // 2:]


def _partition_handles(Patch: Any, facts: dict[str, Any], limit: int = 12) -> list[Any]:
    partitions = facts["partitions"]
    handles = [Patch(facecolor=colour(p["id"]), edgecolor="#404040",
                     label=f"partition {p['id']} on {', '.join(p['devices']) or '-'}") for p in partitions[:limit]]
    if len(partitions) > limit:
        handles.append(Patch(facecolor="white", edgecolor="white", label=f"… {len(partitions) - limit} more"))
    return handles


# ------------------------------------------------------------------------------------------ partitions


def partition_flows(graph: _Graph) -> dict[tuple[int, int], int]:
    """Bytes each partition sends each other partition: every value counted once per receiving partition."""
    sent: dict[tuple[int, int], int] = {}
    seen: set[tuple[int, int]] = set()
    for u, v in graph.edges:
        a, b = graph.owner[u], graph.owner[v]
        if a is None or b is None or a == b or (u, b) in seen:
            continue
        seen.add((u, b))
        sent[(a, b)] = sent.get((a, b), 0) + graph.out_bytes[u]
    return sent


def _partition_level(plt: Any, graph: _Graph, facts: dict[str, Any]) -> Any:
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch

    partitions = {p["id"]: p for p in facts["partitions"]}
    flows = partition_flows(graph)
    depth = {pid: 0 for pid in partitions}
    for _ in range(len(partitions)):  # longest path over the (small) partition DAG
        changed = False
        for (a, b) in flows:
            if depth[b] < depth[a] + 1 <= len(partitions):
                depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    columns: dict[int, list[int]] = {}
    for pid in sorted(partitions):
        columns.setdefault(depth[pid], []).append(pid)
    layer_count = max(columns) + 1 if columns else 1
    width = max(map(len, columns.values()), default=1)
    bands = max(1, round(math.sqrt(layer_count / (1.6 * width)))) if layer_count > 8 else 1
    per_band = math.ceil(layer_count / bands)
    pos = {}
    for d, column in columns.items():
        band, x = divmod(d, per_band)
        for row, pid in enumerate(column):
            pos[pid] = (x * _STEP, -(band * (width + 0.6) + row) * 1.6)

    fig_w = min(max(2.4 * per_band + 0.5, 6.0), 22.0)
    fig_h = min(max(1.25 * bands * (width + 0.6) + 0.8, 3.0), 16.0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    font = max(5.0, min(9.0, fig_h * 72 * 0.85 / max(bands * (width + 0.6), 1) / 5.5))
    crosses = _crosses(facts)
    for (a, b), sent in sorted(flows.items()):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        red = crosses(a, b)
        if x1 > x0:  # to a later column: side to side
            start, end = (x0 + _HALF_W, y0), (x1 - _HALF_W, y1)
        else:  # onto the next band: bottom to top
            start, end = (x0, y0 - 0.55), (x1, y1 + 0.55)
        ax.annotate("", xy=end, xytext=start, zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": CROSSING if red else "#7f7f7f",
                                "linestyle": "--" if red else "-", "linewidth": 1.4 if red else 0.8,
                                "shrinkA": 0, "shrinkB": 0})
        if len(flows) <= 3 * _MAX_EDGE_LABELS:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, human_bytes(sent), fontsize=font * 0.85,
                    ha="center", va="center", color=CROSSING if red else "#404040", zorder=4,
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    for pid, (x, y) in pos.items():
        p = partitions[pid]
        ax.add_patch(FancyBboxPatch((x - _HALF_W, y - 0.55), 2 * _HALF_W, 1.1, boxstyle="round,pad=0.02,rounding_size=0.15",
                                    facecolor=colour(pid), edgecolor="#404040", linewidth=0.6, alpha=0.9, zorder=2))
        devices = ", ".join(p["devices"]) or "-"
        ax.text(x, y, f"partition {pid}\n{len(p['compute_nodes'])} nodes · {human_bytes(p['used_mem_bytes'])}\n"
                f"{fit_label(devices, 26)}", ha="center", va="center", fontsize=font, zorder=3)
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - _HALF_W - 0.2, max(xs) + _HALF_W + 0.2)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.axis("off")
    ax.set_title(_title(facts, f"; {len(graph.names)} nodes shown as partitions, data flows left to right"),
                 fontsize=10)
    _margins(fig, ax, [Line2D([], [], color="#7f7f7f", label="bytes passed on the same device"),
                       Line2D([], [], color=CROSSING, linestyle="--", label="bytes passed between devices")], ncol=2)
    return fig
