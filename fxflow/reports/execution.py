"""The execution report: a partitioned module run by one process per device, measured against
the latency model's prediction (the execute stage's facts, see fxflow.transforms.execute).

`<stage>/execution_report.md` holds the tables (per partition measured vs predicted, per
crossing value bytes and transfer time) and the figures in words; `execution_partitions.png`
draws measured beside predicted per partition and along the critical path. Everything here reads
the stage's facts only.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from rich import box
from rich.table import Table
from tabulate import tabulate

from fxflow.config.schema import ReportSpec
from fxflow.distributed.facts import ExecutionFacts
from fxflow.record.writer import RunRecord
from fxflow.reports.stage import StageReport

log = logging.getLogger("fxflow")

_HEADERS = ["partition", "device (rank)", "replicated on", "measured ms", "min ms", "predicted ms", "measured/predicted"]
_MEASURED, _PREDICTED = "#1f77b4", "#ff7f0e"
_EDGE_HEADERS = ["value", "ranks", "partitions", "bytes", "transfer ms", "MB/s"]


class ExecutionReport(StageReport):
    """Measured vs predicted per partition: a table and words in the terminal, markdown and a bar chart in the record."""

    facts_type = ExecutionFacts

    def write(self, record: RunRecord, stage: str, facts: dict[str, Any], before: Any, after: Any,
              options: ReportSpec) -> list[str]:
        who = "pipeline stage(s), torch.distributed.pipelining" if facts.get("engine") == "pipelining" else \
            "worker process(es) and a driver"
        parts = [f"# {stage}: {facts['workers']} {who} over {facts['process_group']}", ""]
        if facts.get("partitions"):
            parts += [tabulate(_rows(facts), headers=_HEADERS, tablefmt="github"), ""]
        if facts.get("edges"):
            parts += [tabulate(_edge_rows(facts), headers=_EDGE_HEADERS, tablefmt="github"), ""]
        parts += summary_lines(stage, facts)
        written = [f"{stage}/execution_report.md"]
        record.write_text(written[0], "\n".join(parts) + "\n")
        if options.pictures and facts.get("partitions"):
            png = draw_measured_vs_predicted(stage, facts)
            if png is not None:
                record.write_bytes(f"{stage}/execution_partitions.png", png)
                written.append(f"{stage}/execution_partitions.png")
        return written

    def terminal(self, stage: str, facts: dict[str, Any]) -> list[Any]:
        shown: list[Any] = [terminal_table(stage, facts)] if facts.get("partitions") else []
        return shown + summary_lines(stage, facts)


def terminal_table(stage: str, facts: dict[str, Any]) -> Table:
    """Per partition at 80 columns: where it ran, measured and predicted milliseconds, their ratio."""
    table = Table(title=f"{stage}: measured vs predicted per partition", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for name in ("#", "device (rank)", "measured ms", "predicted ms", "measured/predicted"):
        table.add_column(name, justify="left" if name == "device (rank)" else "right", no_wrap=True)
    for row in facts["partitions"]:
        table.add_row(str(row["id"]), f"{row.get('device_name') or '-'} ({row['rank']})", _ms(row["measured_s"]),
                      _ms(row.get("predicted")), _num(row.get("ratio")))
    return table


def summary_lines(stage: str, facts: dict[str, Any]) -> list[str]:
    """The run in words: processes and start-up, replicated partitions, end to end, critical path,
    pipeline throughput, the calibrated latency model, a failure."""
    if facts.get("engine") == "pipelining":
        return pipelining_lines(facts)
    startup = facts.get("startup") or {}
    lines = [f"{facts['workers']} worker process(es) + a driver, {facts['process_group']}"
             + (f"; started in {startup['total_s']:.2f} s (forkserver {startup['forkserver_s']:.2f} s, processes "
                f"{startup['processes_s']:.2f} s, rendezvous {startup['rendezvous_s']:.2f} s)." if startup else ".")]
    for entry in facts["placement"]:
        if entry["replicated_on"]:
            lines.append(f"partition {entry['id']} is replicated on {', '.join(entry['replicated_on'])}: "
                         f"it ran on {entry['device_name']} (rank {entry['rank']}).")
    if "end_to_end_s" in facts:
        path = facts["critical_path"]
        lines.append(f"one request end to end: {_ms(facts['end_to_end_s'])} ms (median of {facts['repeats']}, "
                     f"min {_ms(facts['end_to_end_min_s'])} ms); critical path predicted {_ms(path['predicted'])} ms, "
                     f"measured along the partition DAG {_ms(path['measured_dag_s'])} ms via {_path(path['measured_path'])}.")
        if facts.get("seconds_per_predicted_unit"):
            lines.append(f"over all partitions, measured/predicted is {_num(facts['seconds_per_predicted_unit'])} "
                         "(predictions read as seconds, as MeasuredLatency and CalibratedLatency give them).")
        edges = facts.get("edges") or []
        timed = [e for e in edges if e.get("transfer_s")]
        if timed:
            total = sum(e["bytes"] or 0 for e in timed)
            seconds = sum(e["transfer_s"] for e in timed)
            lines.append(f"{len(edges)} value(s) cross processes per request, {total} B in all; one by one they take "
                         f"{_ms(seconds)} ms ({_num(total / seconds / 1e6)} MB/s effective).")
    pipe = facts.get("pipeline")
    if pipe:
        lines.append(f"pipelined ({pipe['schedule']}, {pipe['microbatches']} micro-batches of a batch of {pipe['batch']}): "
                     f"{_ms(pipe['pipelined_s'])} ms vs {_ms(pipe['sequential_microbatches_s'])} ms one after another "
                     f"(x{_num(pipe['speedup'])}), {_num(pipe['samples_per_s'])} samples/s; same output as one batch: "
                     f"{pipe['matches_full_batch']}.")
    calibration = facts.get("calibration")
    if calibration:
        rate = calibration.get("bytes_per_s")
        lines.append(f"measured latency model: {stage}/{calibration['file']} (re-partition with "
                     f"latency@transforms.partition.latency_model=calibrated transforms.partition.latency_model.path=FILE"
                     + (f" transforms.partition.transfer_rate_bytes_per_sec={rate:.4g}" if rate else "") + ").")
    if facts.get("failure"):
        lines.append(f"failed: {facts['failure']['message']}")
    return lines


def pipelining_lines(facts: dict[str, Any]) -> list[str]:
    """A run by torch.distributed.pipelining in words: stages, schedule, step time, the training proof."""
    startup = facts.get("startup") or {}
    lines = [f"{facts['workers']} pipeline stage(s) (torch.distributed.pipelining, {facts['schedule']}, "
             f"{facts['microbatches']} micro-batch(es)), {facts['process_group']}, launched by {facts['launch']}"
             + (f"; started in {startup['total_s']:.2f} s." if "total_s" in startup else ".")]
    for row in facts.get("stages") or []:
        lines.append(f"stage {row['stage']} on {row.get('device_name') or row['device']}: partitions {row['partitions']}, "
                     f"{', '.join(row['inputs'])} in, {', '.join(row['outputs'])} out.")
    if facts.get("step_s") is not None:
        lines.append(f"one {facts['step']} step of the schedule: {_ms(facts['step_s'])} ms (median of {facts['repeats']}, "
                     f"min {_ms(facts['step_min_s'])} ms), {_num(facts['samples_per_s'])} samples/s.")
    proof = facts.get("training")
    if proof:
        lines.append(f"training step against {proof['reference']}: losses and {proof['parameters']} gradients "
                     f"{'match' if proof['matches'] else 'DIFFER'} (largest differences {proof['max_abs_loss_diff']:.3g} "
                     f"and {proof['max_abs_grad_diff']:.3g}).")
    if facts.get("failure"):
        lines.append(f"failed: {facts['failure']['message']}")
    return lines


def draw_measured_vs_predicted(stage: str, facts: dict[str, Any]) -> bytes | None:
    """PNG bytes: measured beside predicted milliseconds per partition, and the critical path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        log.warning("no execution chart: %s is not installed (pip install matplotlib)", exc.name)
        return None
    rows = facts["partitions"]
    path = facts["critical_path"]
    fig, (parts, whole) = plt.subplots(1, 2, figsize=(max(6.0, 0.9 * len(rows) + 4), 4.0),
                                       gridspec_kw={"width_ratios": [max(len(rows), 2), 2]})
    xs = list(range(len(rows)))
    parts.bar([x - 0.2 for x in xs], [r["measured_s"] * 1e3 for r in rows], width=0.4, color=_MEASURED,
              label="measured (median)")
    parts.bar([x + 0.2 for x in xs], [(r.get("predicted") or 0.0) * 1e3 for r in rows], width=0.4, color=_PREDICTED,
              label="predicted (latency model)")
    parts.set_xticks(xs, [f"{r['id']}\n{r.get('device_name') or ''}" for r in rows])
    parts.set_xlabel("partition")
    parts.set_ylabel("ms per request")
    parts.set_title("compute per partition", fontsize=10)
    bars = [("predicted", path.get("predicted") or 0.0, _PREDICTED), ("along\nthe DAG", path["measured_dag_s"], _MEASURED),
            ("end to\nend", path["measured_end_to_end_s"], _MEASURED)]
    whole.bar(range(len(bars)), [b[1] * 1e3 for b in bars], color=[b[2] for b in bars], width=0.6)
    whole.set_xticks(range(len(bars)), [b[0] for b in bars])
    whole.set_title("critical path", fontsize=10)
    fig.suptitle(f"{stage}: measured vs predicted", fontsize=11)
    fig.legend(handles=parts.containers, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.26, wspace=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _rows(facts: dict[str, Any]) -> list[list[Any]]:
    replicated = {p["id"]: p["replicated_on"] for p in facts["placement"]}
    return [[r["id"], f"{r.get('device_name') or '-'} ({r['rank']})", ", ".join(replicated.get(r["id"], [])) or "-",
             _ms(r["measured_s"]), _ms(r.get("measured_min_s")), _ms(r.get("predicted")), _num(r.get("ratio"))]
            for r in facts["partitions"]]


def _edge_rows(facts: dict[str, Any]) -> list[list[Any]]:
    return [[e["value"], f"{e['src_rank']} -> {e['dst_rank']}", f"{_path(e['from'])} -> {_path(e['to'])}", e["bytes"],
             _ms(e["transfer_s"]), _num(e["bytes_per_s"] / 1e6 if e.get("bytes_per_s") else None)]
            for e in facts["edges"]]


def _path(items: list[Any]) -> str:
    return " -> ".join(str(i) for i in items)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
