"""fxflow's partitioner against torch's accelerator_partitioner, per model family and size.

    python benchmarks/partition.py                        # a few minutes: 64 to 1,024 nodes, torch capped at 10 s
    python benchmarks/partition.py --full                 # 64 to 10,000 nodes, torch capped at 120 s
    python benchmarks/partition.py --families chain parallel --sizes 64 2000 --cap 30 --json out.json

For every family (fxflow.models.graph_families) and size: the traced model, sized, with the
torch's tests' size-rule latencies (SizeRuleLatency) and `--devices` devices of `--fraction` of the
graph's bytes each. Each torch mode runs in its own process and is stopped after `--cap`
seconds of work (reported as a timeout); its time covers torch's own sizing
(`get_size_of_all_nodes` with the example inputs) and `partition_graph`. Each fxflow algorithm's time covers `size_nodes`,
`build_problem` and the algorithm. Critical paths of both are torch's cost model
(`cost.critical_path_latency`, proven equal to torch's recursive helpers in the tests), taken
on the partitions each partitioner holds at the end. The MILP (optimal with one partition per
device) runs on graphs of up to `--milp-nodes` nodes, with the best fxflow value as a cutoff;
like every fxflow result its placement is returned cut into independent pieces, and the gap
compares `best` with it as returned, or with its lower bound when it runs out of time (<=).
The proven gaps compare `best` and torch's best mode with the lower bound no plan beats
(`fxflow.partitioning.bounds`); benchmarks/partition_gaps.py sweeps them over device counts.

Tensors here are tiny, so torch runs on one thread (`torch.set_num_threads(1)`) in every
process: with more threads on a shared machine, thread wake-ups dominate the timings.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate
from torch.fx import symbolic_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fxflow.models.graph_families import FAMILIES, family_model  # noqa: E402
from fxflow.partitioning import PlacementRefused, build_problem, partition, size_nodes  # noqa: E402
from fxflow.partitioning.algorithms.milp import MilpTimeout  # noqa: E402
from fxflow.partitioning.bounds import gap, lower_bound  # noqa: E402
from fxflow.partitioning.cost import critical_path_latency  # noqa: E402
from fxflow.partitioning.placement import Placement  # noqa: E402
from fxflow.partitioning.latency import SizeRuleLatency  # noqa: E402

TORCH_MODES = ("size_based", "cost_aware", "kl_based")
OURS = ("pipeline", "list_scheduling", "best")
DEFAULT_SIZES = (64, 256, 1024)
FULL_SIZES = (64, 256, 1024, 2048, 5000, 10000)
LARGEST = {"sparse_nn": 2048}  # its top MLP grows with the square of the table count
STARTUP_ALLOWANCE = 300.0  # seconds a worker may spend importing torch and building the model


def warm_up() -> None:
    """Pay the one-off imports of shape propagation and partitioning before anything is timed."""
    from torch.fx.passes import graph_manipulation

    model, inputs = family_model("chain", 8)
    graph_manipulation.get_size_of_all_nodes(symbolic_trace(model), inputs)
    size_nodes(symbolic_trace(model), inputs)


def setup(family: str, nodes: int):
    """Model, traced module and inputs: the same in the parent and in every worker."""
    model, inputs = family_model(family, nodes)
    gm = symbolic_trace(model)
    return model, gm, inputs


def device_list(gm, devices: int, fraction: float):
    from torch.fx.experimental.partitioner_utils import Device

    total = sum(n.size_bytes.total_size for n in gm.graph.nodes if n.op != "output")
    return [Device(f"dev_{i}", int(total * fraction), i) for i in range(devices)]


def torch_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one torch mode; return its time and partitions (compute node names, logical devices)."""
    from torch.fx.experimental.accelerator_partitioner import Partitioner
    from torch.fx.experimental.partitioner_utils import PartitionerConfig, PartitionMode
    from torch.fx.passes import graph_manipulation

    warm_up()
    model, gm, inputs = setup(spec["family"], spec["nodes"])
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.setitimer(signal.ITIMER_REAL, spec["cap"])  # only the timed work counts against the cap
    started = time.perf_counter()
    partitioner = Partitioner()
    try:
        graph_manipulation.get_size_of_all_nodes(gm, inputs)
        devices = device_list(gm, spec["devices"], spec["fraction"])
        latency = SizeRuleLatency().mapping(gm, inputs)
        config = PartitionerConfig(devices, mode=PartitionMode[spec["mode"]], transfer_rate_bytes_per_sec=spec["rate"],
                                   node_to_latency_mapping=latency)
        partitioner.partition_graph(gm, model, config)
    except _OutOfTime:
        return {"timeout": True, "seconds": spec["cap"]}
    except Exception as exc:  # torch's refusals are RuntimeErrors; anything else is reported the same way
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - started}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - started
    parts = [{"id": p.partition_id, "logical_device_ids": list(p.logical_device_ids),
              "nodes": [n.name for n in p.nodes if n.op not in ("placeholder", "get_attr", "output")]}
             for p in partitioner.partitions]
    return {"seconds": seconds, "partitions": parts}


class _OutOfTime(Exception):
    pass


def _out_of_time(signum: int, frame: Any) -> None:
    raise _OutOfTime


def run_torch(spec: dict[str, Any], cap: float) -> dict[str, Any]:
    """One torch mode in a fresh process (imports and model building are not timed)."""
    try:
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(dict(spec, cap=cap))],
                              capture_output=True, text=True, timeout=cap + STARTUP_ALLOWANCE)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "seconds": cap}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["worker failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_critical_path(problem, outcome: dict[str, Any]) -> tuple[float | None, str]:
    """Critical path of torch's partitions under the same cost model, and a note on them."""
    index = {name: i for i, name in enumerate(problem.names)}
    first_device = {}
    for i, d in enumerate(problem.devices):
        first_device.setdefault(d.logical_id, i)
    partition_of = [0] * problem.num_nodes
    parts = sorted(outcome["partitions"], key=lambda p: p["id"])
    for k, p in enumerate(parts):
        for name in p["nodes"]:
            partition_of[index[name]] = k
    placement = Placement(tuple(partition_of), tuple(tuple(first_device[l] for l in p["logical_device_ids"]) for p in parts))
    homeless = sum(1 for p in parts if not p["logical_device_ids"])
    note = f"{len(parts)}p" + (f", {homeless} without device" if homeless else "")
    return critical_path_latency(problem, placement), note


def run_case(family: str, nodes: int, args: argparse.Namespace) -> dict[str, Any]:
    model, gm, inputs = setup(family, nodes)
    row: dict[str, Any] = {"family": family, "target": nodes}
    started = time.perf_counter()
    size_nodes(gm, inputs)
    devices = device_list(gm, args.devices, args.fraction)
    latency = SizeRuleLatency().mapping(gm, inputs)
    problem = build_problem(gm, latency, devices, args.rate)
    prepare = time.perf_counter() - started
    row["nodes"] = len(gm.graph.nodes)
    row["prepare_seconds"] = prepare
    row["bound"] = lower_bound(problem, args.objective).value
    row["objective"] = args.objective
    for mode in TORCH_MODES:
        spec = {"family": family, "nodes": nodes, "devices": args.devices, "fraction": args.fraction, "rate": args.rate,
                "mode": mode}
        outcome = run_torch(spec, args.cap)
        entry: dict[str, Any] = {"seconds": outcome.get("seconds")}
        if outcome.get("timeout"):
            entry["note"] = f"timeout > {args.cap:g} s"
        elif "error" in outcome:
            entry["note"] = outcome["error"][:60]
        else:
            entry["cp"], entry["note"] = torch_critical_path(problem, outcome)
        row[mode] = entry
    best_value = None
    for name in OURS:
        started = time.perf_counter()
        try:
            result = partition(problem, name, args.objective)
            row[name] = {"seconds": prepare + time.perf_counter() - started, "cp": result.value,
                         "note": f"{result.placement.num_partitions}p"}
            best_value = result.value if best_value is None else min(best_value, result.value)
        except PlacementRefused as exc:
            row[name] = {"seconds": prepare + time.perf_counter() - started, "note": f"refused: {exc}"[:60]}
    if problem.num_nodes <= args.milp_nodes:
        try:
            result = partition(problem, "milp", args.objective, time_limit_s=args.milp_limit, upper_bound=best_value)
            row["milp"] = {"cp": result.value, "optimal": result.optimal, "bound": result.info.get("dual_bound"),
                           "seconds": result.info["seconds"]}
        except MilpTimeout as exc:
            row["milp"] = {"note": "no solution in time", "optimal": False, "bound": exc.dual_bound}
        except PlacementRefused as exc:
            row["milp"] = {"note": str(exc)[:60]}
    return row


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _cell(entry: dict[str, Any] | None, key: str) -> str:
    if not entry:
        return "-"
    if key == "cp":
        return _fmt(entry.get("cp")) if "cp" in entry else entry.get("note", "-")
    seconds = entry.get("seconds")
    return f"{seconds:.3g}" if seconds is not None and "timeout" not in entry.get("note", "") else entry.get("note", "-")


def tables(rows: list[dict[str, Any]]) -> str:
    latency, timing = [], []
    for row in rows:
        finished = [row[m]["cp"] for m in TORCH_MODES if "cp" in row[m]]
        best_torch = min(finished) if finished else None
        best_mode = min((m for m in TORCH_MODES if "cp" in row[m]), key=lambda m: row[m]["cp"], default=None)
        milp = row.get("milp") or {}
        reference = milp.get("cp") if milp.get("optimal") else milp.get("bound")
        ours = row["best"].get("cp")
        gap_text = "-"
        if reference and ours is not None:
            gap_text = ("" if milp.get("optimal") else "<= ") + f"{100 * (ours - reference) / reference:.2f}%"
        ratio = f"{ours / best_torch:.3f}" if ours is not None and best_torch else "-"
        torch_value = best_torch if row.get("objective") == "latency" else None  # torch's figure is the critical path
        proven = [f"{100 * gap(v, row['bound']):.2f}%" if v is not None and "bound" in row else "-" for v in (ours, torch_value)]
        contiguous = row["pipeline"].get("cp")
        latency.append([row["family"], row["nodes"]] + [_cell(row[m], "cp") for m in TORCH_MODES]
                       + [_cell(row[m], "cp") for m in OURS]
                       + [_fmt(milp.get("cp")) + ("" if milp.get("optimal", True) else " (limit)") if milp else "-",
                          ratio, gap_text, f"{contiguous / best_torch:.3f}" if contiguous and best_torch else "-", *proven])
        fastest = row[best_mode]["seconds"] if best_mode else None
        timing.append([row["family"], row["nodes"], f"{row['prepare_seconds']:.3g}"]
                      + [_cell(row[m], "seconds") for m in TORCH_MODES] + [_cell(row[m], "seconds") for m in OURS]
                      + [f"{row['best']['seconds'] / fastest:.3g}" if fastest else "-"])
    head = ["family", "nodes", *TORCH_MODES, *OURS, "milp", "best/torch", "best vs milp", "pipeline/torch",
            "best gap (proven)", "torch gap (proven)"]
    out = "Critical-path latency (torch's cost model; lower is better)\n\n"
    out += tabulate(latency, headers=head, tablefmt="github") + "\n\n"
    out += ("Wall seconds (torch: its sizing + partition_graph; fxflow: size_nodes + build_problem + algorithm; "
            "'sizing' is the fxflow share)\n\n")
    out += tabulate(timing, headers=["family", "nodes", "sizing", *TORCH_MODES, *OURS, "best/torch (time)"],
                    tablefmt="github")
    return out + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help="sizes up to 10,000 nodes, torch capped at 120 s")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", type=int, help="target node counts")
    parser.add_argument("--cap", type=float, help="seconds before a torch mode counts as a timeout (10, or 120 with --full)")
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--fraction", type=float, default=0.3, help="each device holds this share of the graph's bytes")
    parser.add_argument("--rate", type=float, default=2.0, help="transfer rate, bytes per second (torch's tests' 2)")
    parser.add_argument("--objective", default="latency", choices=["latency", "throughput"])
    parser.add_argument("--milp-nodes", type=int, default=64, help="run the MILP on graphs up to this many nodes")
    parser.add_argument("--milp-limit", type=float, default=30.0, help="MILP time limit, seconds")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        print(json.dumps(torch_worker(json.loads(args.worker))))
        return
    warm_up()
    sizes = args.sizes or (FULL_SIZES if args.full else DEFAULT_SIZES)
    args.cap = args.cap or (120.0 if args.full else 10.0)
    rows = []
    cases = [(family, nodes) for family in args.families for nodes in sizes if nodes <= LARGEST.get(family, nodes)]
    print(f"[{len(cases)} cases; each torch mode stops after {args.cap:g} s, the MILP after {args.milp_limit:g} s: "
          f"{'tens of minutes' if args.full else 'a few minutes'}; one line per case as it ends]", file=sys.stderr, flush=True)
    begun = time.perf_counter()
    for number, (family, nodes) in enumerate(cases, 1):
        started = time.perf_counter()
        rows.append(run_case(family, nodes, args))
        print(f"[{number}/{len(cases)} {family} {rows[-1]['nodes']} nodes: {time.perf_counter() - started:.1f} s]",
              file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    print(tables(rows))
    print(f"[benchmark took {time.perf_counter() - begun:.0f} s]", file=sys.stderr)


if __name__ == "__main__":
    main()
