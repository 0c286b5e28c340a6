"""The partition report: a table people can read, the JSON behind it, and a picture of the split graph
(fxflow.reports.partition_picture).

Everything here reads the partition facts (`partitions.<i>.compute_nodes`, `devices`, ...) and
the graph the stage received, never the partitioner's own objects, so any backend that records
the same facts gets the same report.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text
from tabulate import tabulate
from fxflow.config.schema import ReportSpec
from fxflow.partitioning.facts import PartitionFacts
from fxflow.record.writer import RunRecord
from fxflow.reports.partition_picture import draw_partitions
from fxflow.reports.stage import StageReport, graph_of
from fxflow.reports.units import human_bytes

_HEADERS = ["partition", "device(s)", "compute nodes", "memory used / budget (B)", "latency mem/compute/overall"]


class PartitionReport(StageReport):
    """`<stage>/partition_report.{md,json}` and `partition_graph.png`; a table and words in the terminal."""

    facts_type = PartitionFacts

    def write(self, record: RunRecord, stage: str, facts: dict[str, Any], before: Any, after: Any,
              options: ReportSpec) -> list[str]:
        text = tabulate(_rows(facts), headers=_HEADERS, tablefmt="github") + "\n\n" + "\n".join(summary_lines(facts)) + "\n"
        written = [f"{stage}/partition_report.md", f"{stage}/partition_report.json"]
        record.write_text(written[0], text)
        record.write_json(written[1], facts)
        graph = graph_of(before)
        if options.pictures and graph is not None:
            png = draw_partitions(graph, facts, options.picture_node_limit)
            if png is not None:
                record.write_bytes(f"{stage}/partition_graph.png", png)
                written.append(f"{stage}/partition_graph.png")
        return written

    def terminal(self, stage: str, facts: dict[str, Any]) -> list[Any]:
        return [terminal_table(stage, facts), *summary_lines(facts)]


def terminal_table(stage: str, facts: dict[str, Any]) -> Table:
    """The partitions for an 80-column terminal: node lists wrap between names (never inside one),
    memory in readable units, and the latency column only when a latency model gave figures, three
    significant digits each, wrapping between the three (seconds print as 1.23e-05)."""
    with_latency = any(p.get("latency") for p in facts["partitions"])
    budgets = {name: d["mem_bytes"] for name, d in facts["devices"].items()}
    table = Table(title=f"{stage}: partitions", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("devices", no_wrap=True)
    table.add_column("memory used / budget", no_wrap=True, justify="right")
    latencies = [" / ".join(f"{v:.3g}" for v in p["latency"]) if p.get("latency") else "" for p in facts["partitions"]]
    if with_latency:  # short figures on one line; seconds (1.23e-05 / ...) one per line, so names keep room
        wide = max(map(len, latencies)) > _LATENCY_WIDTH
        table.add_column("latency mem / comp / all", justify="right", no_wrap=not wide,
                         max_width=10 if wide else None)
    names = [n for p in facts["partitions"] for n in p["compute_nodes"][:_SHOWN]]
    table.add_column("compute nodes", min_width=min(max(map(len, names), default=5) + 1, 32), ratio=1)
    for p, latency in zip(facts["partitions"], latencies):
        budget = min((budgets[d] for d in p["devices"]), default=0)
        row = [str(p["id"]), "\n".join(p["devices"]) or "-", f"{human_bytes(p['used_mem_bytes'])} / {human_bytes(budget)}"]
        if with_latency:
            row.append(latency)
        row.append(f"{len(p['compute_nodes'])}: {_names(p['compute_nodes'])}")
        table.add_row(*(Text(cell) for cell in row))  # device and node names come from config: never markup
    return table


def _rows(facts: dict[str, Any]) -> list[list[Any]]:
    """The record's table (exact bytes)."""
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


_SHOWN = 6  # node names listed per partition; the count says how many there are
_LATENCY_WIDTH = 16  # latency cells up to this long stay on one line


def _names(names: list[str], limit: int = _SHOWN) -> str:
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
    if "gap" in facts:
        lines.append(f"no plan does better than {facts['lower_bound']:g} ({facts['lower_bound_kind']} bound): "
                     f"gap at most {100 * facts['gap']:.2f}%.")
    return lines
