"""How far fxflow's plans are from the best possible: the proven gap per family, size and device count.

    python benchmarks/partition_gaps.py                     # 64 to 10,000 nodes, 2 to 16 devices (minutes)
    python benchmarks/partition_gaps.py --sizes 64 256 --devices 4 --json gaps.json

For every family (fxflow.models.graph_families), size and device count k: the traced model, sized,
with torch's tests' size-rule latencies at `--rate` B/s, over k devices that each hold 1.2/k of
the graph's bytes (tight: memory forces the graph onto most devices), partitioned by fxflow's
`--algorithm` for torch's critical path. Each row gives the plan's critical path, the lower bound
no plan beats (`fxflow.partitioning.bounds`, and which bound it was), the gap
(objective - bound) / objective, and the seconds the bound and the partitioner took. Cases where
a node fits no device, or the partitioner refuses, are listed and left out of the summary.

The summary per family: the geometric-mean gap, 1 - 1 / geomean(objective / bound) (a mean of
ratios, defined where some gaps are 0), and the worst gap.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch.fx import symbolic_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxflow.models.graph_families import FAMILIES, family_model  # noqa: E402
from fxflow.partitioning import Device, PlacementRefused, build_problem, partition, size_nodes  # noqa: E402
from fxflow.partitioning.bounds import gap, lower_bound  # noqa: E402
from fxflow.partitioning.latency import SizeRuleLatency  # noqa: E402

SIZES = (64, 256, 1024, 2048, 5000, 10000)
DEVICES = (2, 4, 8, 16)
LARGEST = {"sparse_nn": 2048}  # its top MLP grows with the square of the table count


def run_case(family: str, nodes: int, devices: int, args: argparse.Namespace) -> dict[str, Any]:
    model, inputs = family_model(family, nodes)
    gm = symbolic_trace(model)
    size_nodes(gm, inputs)
    total = sum(n.size_bytes.total_size for n in gm.graph.nodes if n.op != "output")
    budget = int(total * 1.2 / devices)
    problem = build_problem(gm, SizeRuleLatency().mapping(gm, inputs),
                            [Device(f"dev_{i}", budget, i) for i in range(devices)], args.rate)
    row: dict[str, Any] = {"family": family, "nodes": problem.num_nodes, "devices": devices}
    started = time.perf_counter()
    try:
        result = partition(problem, args.algorithm, "latency", time_limit_s=args.time_limit)
    except PlacementRefused as exc:
        return dict(row, refused=str(exc)[:70])
    row["solve_seconds"] = time.perf_counter() - started
    bound = lower_bound(problem, "latency")
    row.update(objective=result.value, bound=bound.value, kind=bound.kind, gap=gap(result.value, bound.value),
               bound_seconds=bound.seconds, partitions=result.placement.num_partitions)
    return row


def summary(rows: list[dict[str, Any]]) -> list[list[Any]]:
    out = []
    families = list(dict.fromkeys(r["family"] for r in rows)) + ["all"]
    for family in families:
        done = [r for r in rows if "gap" in r and family in (r["family"], "all")]
        if not done:
            continue
        ratios = [r["objective"] / r["bound"] if r["bound"] > 0 else 1.0 for r in done]
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        worst = max(done, key=lambda r: r["gap"])
        out.append([family, len(done), f"{100 * (1 - 1 / geomean):.3f}%", f"{100 * worst['gap']:.3f}%",
                    f"{worst['nodes']} nodes, {worst['devices']} devices",
                    f"{max(r['bound_seconds'] for r in done):.3f}"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="target node counts")
    parser.add_argument("--devices", nargs="+", type=int, default=list(DEVICES), help="device counts")
    parser.add_argument("--algorithm", default="best", choices=["best", "pipeline", "list_scheduling"])
    parser.add_argument("--time-limit", type=float, default=2.0, help="the partitioner's time limit, seconds")
    parser.add_argument("--rate", type=float, default=2.0, help="transfer rate, bytes per second (torch's tests' 2)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for family in args.families:
        for nodes in args.sizes:
            if nodes > LARGEST.get(family, nodes):
                continue
            for devices in args.devices:
                rows.append(run_case(family, nodes, devices, args))
                r = rows[-1]
                print(f"[{family} {r['nodes']} nodes, {devices} devices: "
                      + (f"gap {100 * r['gap']:.3f}%" if "gap" in r else "refused") + "]", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    table = [[r["family"], r["nodes"], r["devices"], f"{r['objective']:.6g}", f"{r['bound']:.6g}", r["kind"],
              f"{100 * r['gap']:.3f}%", r["partitions"], f"{r['bound_seconds']:.3f}", f"{r['solve_seconds']:.2f}"]
             if "gap" in r else [r["family"], r["nodes"], r["devices"], "-", "-", "-", "-", "-", "-", r["refused"]]
             for r in rows]
    print(f"Proven gap of fxflow's {args.algorithm} plans (torch's critical path, devices of 1.2/k of the bytes each)\n")
    print(tabulate(table, headers=["family", "nodes", "devices", "critical path", "lower bound", "tightest bound",
                                   "gap", "partitions", "bound s", "solve s"], tablefmt="github", disable_numparse=True))
    print("\nPer family: geometric-mean gap (1 - 1/geomean(objective/bound)), worst gap, slowest bound\n")
    print(tabulate(summary(rows), headers=["family", "cases", "geomean gap", "worst gap", "worst case", "bound s (max)"],
                   tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
