"""The partition report: a table people can read, the JSON behind it, and a picture of the split graph.

Everything here reads the partition facts (`partitions.<i>.compute_nodes`, `devices`, ...) and
the graph the stage received, never the partitioner's own objects, so any backend that records
the same facts gets the same report.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from rich.table import Table
from rich.text import Text
from tabulate import tabulate
from torch.fx import GraphModule

from fxflow.record.writer import RunRecord
from fxflow.reports.stage import StageReport, graph_of

log = logging.getLogger("fxflow")

_HEADERS = ["partition", "device(s)", "compute nodes", "memory used / budget (B)", "latency mem/compute/overall"]


class PartitionReport(StageReport):
    """`<stage>/partition_report.{md,json}` and `partition_graph.png`; a table and words in the terminal."""

    def applies(self, facts: dict[str, Any]) -> bool:
        return "partitions" in facts and "devices" in facts

    def write(self, record: RunRecord, stage: str, facts: dict[str, Any], before: Any, after: Any,
              pictures: bool) -> list[str]:
        text = tabulate(_rows(facts), headers=_HEADERS, tablefmt="github") + "\n\n" + "\n".join(summary_lines(facts)) + "\n"
        written = [f"{stage}/partition_report.md", f"{stage}/partition_report.json"]
        record.write_text(written[0], text)
        record.write_json(written[1], facts)
        graph = graph_of(before)
        if pictures and graph is not None:
            png = draw_partitions(graph, facts)
            if png is not None:
                record.write_bytes(f"{stage}/partition_graph.png", png)
                written.append(f"{stage}/partition_graph.png")
        return written

    def terminal(self, stage: str, facts: dict[str, Any]) -> list[Any]:
        table = Table(title=f"{stage}: partitions", title_justify="left")
        for header in _HEADERS:
            table.add_column(header, overflow="fold")
        for row in _rows(facts):
            table.add_row(*(Text(str(cell)) for cell in row))  # device names come from config: never markup
        return [table, *summary_lines(facts)]


def _rows(facts: dict[str, Any]) -> list[list[Any]]:
    budgets = {name: d["mem_bytes"] for name, d in facts["devices"].items()}
    rows = []
    for p in facts["partitions"]:
        budget = min((budgets[d] for d in p["devices"]), default=0)
        latency = p.get("latency")
        rows.append([
            p["id"],
            ", ".join(f"{d} (#{lid})" for d, lid in zip(p["devices"], p["logical_device_ids"])) or "-",
            f"{len(p['compute_nodes'])}: {_names(p['compute_nodes'])}",
            f"{p['used_mem_bytes']:,} / {budget:,}",
            "/".join(f"{v:g}" for v in latency) if latency else "-",
        ])
    return rows


def _names(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f", … (+{len(names) - limit})" if len(names) > limit else "")


def summary_lines(facts: dict[str, Any]) -> list[str]:
    """The report in words: placement, replication, idle devices, critical path."""
    lines = [f"{facts['num_partitions']} partition(s) over {len(facts['devices'])} device(s), {facts['mode']} mode; "
             f"the partitioned graph has {facts['graph_node_count']} nodes."]
    for p in facts["partitions"]:
        if len(p["devices"]) > 1:
            lines.append(f"partition {p['id']} is replicated on {' and '.join(p['devices'])}.")
    for name in facts["idle_devices"]:
        lines.append(f"{name} holds no partition: it stays idle.")
    if "critical_path_latency" in facts:
        lines.append(f"critical-path latency: {facts['critical_path_latency']:g} "
                     f"(transfer rate {facts['transfer_rate_bytes_per_sec']:g} B/s).")
    return lines


def draw_partitions(gm: GraphModule, facts: dict[str, Any]) -> bytes | None:
    """PNG of the graph, nodes grouped and coloured by partition, edges between partitions that
    share no device dashed with the bytes moved. None (and a log line) without matplotlib/networkx."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import networkx as nx
        from matplotlib.patches import Patch
    except ImportError as exc:
        log.warning("no partition picture: %s is not installed (pip install matplotlib networkx)", exc.name)
        return None

    owner = {name: p["id"] for p in facts["partitions"] for name in p["compute_nodes"]}
    devices_of = {p["id"]: set(p["devices"]) for p in facts["partitions"]}
    graph = nx.DiGraph()
    for node in gm.graph.nodes:
        graph.add_node(node.name)
        size = getattr(node, "size_bytes", None)
        for user in node.users:
            graph.add_edge(node.name, user.name, bytes=size.output_size if size else 0)

    # Columns follow data-flow depth; within a column nodes are grouped by partition.
    pos = {}
    for depth, layer in enumerate(nx.topological_generations(graph)):
        for row, name in enumerate(sorted(layer, key=lambda n: (owner.get(n, -1), n))):
            pos[name] = (depth, -row)
    cmap = plt.get_cmap("tab10")
    colors = [cmap(owner[n] % 10) if n in owner else (0.85, 0.85, 0.85) for n in graph.nodes]
    crossing = [(u, v) for u, v in graph.edges
                if u in owner and v in owner and not devices_of[owner[u]] & devices_of[owner[v]]]
    local = [e for e in graph.edges if e not in set(crossing)]

    width = max(8.0, 1.3 * (max(x for x, _ in pos.values()) + 1))
    height = max(4.0, 0.7 * (max(-y for _, y in pos.values()) + 1))
    fig, ax = plt.subplots(figsize=(min(width, 40), min(height, 30)))
    nx.draw_networkx_nodes(graph, pos, node_color=colors, node_size=500, ax=ax, edgecolors="black", linewidths=0.5)
    nx.draw_networkx_labels(graph, pos, font_size=6, ax=ax)
    nx.draw_networkx_edges(graph, pos, edgelist=local, edge_color="grey", arrows=True, ax=ax, width=0.6)
    nx.draw_networkx_edges(graph, pos, edgelist=crossing, edge_color="black", arrows=True, ax=ax, width=1.4, style="dashed")
    nx.draw_networkx_edge_labels(graph, pos, edge_labels={(u, v): f"{graph.edges[u, v]['bytes']} B" for u, v in crossing},
                                 font_size=6, ax=ax)
    legend = [Patch(color=cmap(pid % 10), label=f"partition {pid} on {', '.join(sorted(devs)) or '-'}")
              for pid, devs in devices_of.items()]
    legend.append(Patch(color=(0.85, 0.85, 0.85), label="inputs and constants"))
    legend.append(Patch(facecolor="white", edgecolor="black", linestyle="--", label="edge across devices (bytes moved)"))
    idle = facts.get("idle_devices") or []
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_title(f"{facts['num_partitions']} partitions, {facts['mode']} mode" + (f"; idle: {', '.join(idle)}" if idle else ""))
    ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
