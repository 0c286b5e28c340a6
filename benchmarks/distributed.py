"""Partitioned models run with one process per device, measured against the latency model.

For each reference case (sparse_nn over three 33 MB devices, a chain in four stages, parallel
branches on three devices) it prints, per partition, the measured compute time beside the
prediction of `MeasuredLatency` (per-node timing in this process, with the same thread count as
the ranks), the crossing edges with bytes and transfer time, the critical path predicted /
measured end to end / measured along the partition DAG / re-predicted by torch's model fed with
this run's calibration, and for the chain the pipelined (GPipe, forward) throughput. Then the
start-up overhead: forkserver (torch imported once) against spawn.

    python benchmarks/distributed.py                    # all cases, 10 repeats
    python benchmarks/distributed.py --cases chain --repeats 20 --json out.json
    python benchmarks/distributed.py --backend nccl --torch-devices dev_0=cuda:0   # where a GPU is
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def main() -> None:
    # Heavy imports live here: every rank re-runs this script's top level as __mp_main__.
    import torch
    from rich.console import Console

    from fxflow.distributed import placement_from_facts, prestart
    from fxflow.distributed.cases import CASES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank (and for the prediction)")
    parser.add_argument("--backend", default="gloo", help="gloo, or nccl where devices are CUDA")
    parser.add_argument("--torch-devices", default="", help="device name -> torch device, e.g. dev_0=cuda:0,dev_1=cpu")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up comparison")
    parser.add_argument("--json", help="write every record here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()

    records = {}
    first_start = prestart()
    sizes = {"chain": {"width": 1024, "depth": 8, "batch": 64}, "branches": {"width": 512, "batch": 64}}
    for name in args.cases.split(","):
        case = CASES[name](**sizes.get(name, {}))
        torch_devices = dict(pair.split("=") for pair in args.torch_devices.split(",") if pair)
        placement = placement_from_facts(case.facts["partitions"], torch_devices)
        records[name] = _run_case(console, case, placement, args)
    if not args.no_startup:
        records["startup"] = _startup(console, first_start, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1, default=str)


def _run_case(console, case, placement, args) -> dict:
    from rich.table import Table

    from fxflow.checks.equivalence import call_replayed, compare
    from fxflow.distributed import DistributedModule
    from fxflow.distributed.calibration import calibrated_latency, predicted_critical_path
    from fxflow.distributed.compare import compare_with_prediction

    with DistributedModule(case.split, placement, args.backend, threads_per_worker=args.threads) as dm:
        output = dm.run([case.inputs])[0]
        measurement = dm.measure(case.inputs, repeats=args.repeats, warmup=3, probe_repeats=args.repeats,
                                 microbatches=case.microbatches if case.name == "chain" else 0)
    ok, detail, _ = compare(call_replayed(case.model, case.inputs, case.rng_seed), output, {})
    table = compare_with_prediction(measurement, case.facts)
    calibration = calibrated_latency(measurement, case.split)
    repredicted = predicted_critical_path(case.partitions, calibration, case.traced, case.latency_mapping)

    console.rule(f"[bold]{case.name}[/]: {len(measurement['ranks']) - 1} workers + driver, equivalence "
                 f"{'passed' if ok else 'FAILED'} ({detail})")
    parts = Table("partition", "device (rank)", "replicated on", "measured ms", "predicted ms", "measured/predicted", title="compute per partition")
    placed = {p["id"]: p for p in measurement["placement"]}
    for row in table["partitions"]:
        p = placed[row["id"]]
        parts.add_row(str(row["id"]), f"{p['device_name']}={p['device']} ({p['rank']})", ", ".join(p["replicated_on"]) or "-",
                      _ms(row["measured_s"]), _ms(row["predicted"]), _num(row["ratio"]))
    console.print(parts)
    edges = Table("value", "ranks", "from -> to", "bytes", "transfer ms", "MB/s", title="crossing edges (half round trip, median)")
    for e in measurement["edges"]:
        edges.add_row(e["value"], f"{e['src_rank']} -> {e['dst_rank']}", f"{e['from']} -> {e['to']}", str(e["bytes"]),
                      _ms(e["transfer_s"]), _num(e["bytes_per_s"] / 1e6 if e["bytes_per_s"] else None))
    console.print(edges)
    path = table["critical_path"]
    console.print(f"critical path: predicted {_ms(path['predicted'])} ms (no link cost) | measured end to end "
                  f"{_ms(path['measured_end_to_end_s'])} ms | measured along the DAG {_ms(path['measured_dag_s'])} ms "
                  f"via {path['measured_path']} | torch's model fed with this run {_ms(repredicted)} ms")
    console.print(f"calibrated link: {_num((calibration['transfer']['bytes_per_s'] or 0) / 1e6)} MB/s effective "
                  f"over {calibration['transfer']['edges']} edges")
    pipe = measurement["pipeline"]
    if pipe:
        console.print(f"pipeline ({pipe['schedule']}, {pipe['microbatches']} micro-batches of a batch of {pipe['batch']}): "
                      f"{_ms(pipe['pipelined_s'])} ms pipelined vs {_ms(pipe['sequential_microbatches_s'])} ms one after "
                      f"another (x{_num(pipe['speedup'])}), {_num(pipe['samples_per_s'])} samples/s; ideal "
                      f"(compute only) {_ms(pipe['ideal_compute_only_s'])} ms; same output as one batch: {pipe['matches_full_batch']}")
    return {"measurement": measurement, "comparison": table, "calibration": calibration,
            "repredicted_critical_path_s": repredicted, "equivalence": ok}


def _startup(console, first_start: float, args) -> dict:
    from fxflow.distributed import DistributedModule
    from fxflow.distributed.cases import chain_case

    case = chain_case(predict=False, width=64, depth=4)
    from fxflow.distributed import placement_from_facts

    placement = placement_from_facts(case.facts["partitions"])
    figures = {"forkserver_first_start_s": first_start}
    for method in ("forkserver", "spawn"):
        totals = []
        for _ in range(3 if method == "forkserver" else 1):
            with DistributedModule(case.split, placement, start_method=method) as dm:
                totals.append(dm.startup["total_s"])
        figures[f"{method}_start_s"] = statistics.median(totals)
    import_torch = []
    for _ in range(3):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        import_torch.append(time.perf_counter() - begin)
    figures["python_import_torch_s"] = statistics.median(import_torch)
    console.rule("[bold]start-up[/] (driver + 4 workers)")
    console.print(f"fresh `python -c 'import torch'`: {figures['python_import_torch_s']:.2f} s | forkserver first start "
                  f"(imports torch once): {first_start:.2f} s | a run's start with the forkserver warm: "
                  f"{figures['forkserver_start_s']:.3f} s | with spawn (each rank imports torch, in parallel): "
                  f"{figures['spawn_start_s']:.2f} s")
    return figures


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
