"""The distributed recipes at benchmark sizes: each partitioned model run by one process per
device, measured against the latency model, then re-partitioned with what was measured.

For each recipe (distributed_sparse_nn, distributed_chain with width 1024 and batch 64,
distributed_branches with width 512 and batch 64) it runs the recipe as `python -m fxflow`
does and prints its report: per partition the measured compute time beside MeasuredLatency's
prediction (timed with one thread, as the workers run), the critical path predicted / measured
along the partition DAG / measured end to end, and for the chain the pipelined (GPipe, forward)
throughput. Then torch's critical path re-predicted by the partition stage fed with this run's
calibrated_latency.json, and the start-up overhead: forkserver (torch imported once) against spawn.

    python benchmarks/distributed.py                                  # every recipe, 10 repeats
    python benchmarks/distributed.py --recipes distributed_chain --repeats 20 --json out.json
    python benchmarks/distributed.py --torch-devices dev_0=cuda:0      # where a GPU is (process_group auto: nccl)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = ("distributed_sparse_nn", "distributed_chain", "distributed_branches")


def sizes(recipe: str) -> list[str]:
    """Overrides that make the recipe's model big enough to time (its devices sized to match)."""
    if recipe == "distributed_chain":
        width, batch = 1024, 64
        block = (width * width + width) * 4 + 2 * batch * width * 4  # Linear weights, its output, the ReLU's output
        budget = 2 * block + batch * width * 4 + 64_000  # two blocks per stage (and the input, on the first)
        return [f"model.module.width={width}", f"model.inputs.x.shape=[{batch},{width}]",
                *(f"devices.dev_{i}.mem_bytes={budget}" for i in range(4))]
    if recipe == "distributed_branches":
        return ["model.module.width=512", "model.inputs.x.shape=[64,512]"]
    return []


def main() -> None:
    # Heavy imports live here: with forkserver or spawn, worker processes import this script as __mp_main__.
    from fxflow.compose import compose_recipe
    from fxflow.distributed import prestart
    from fxflow.pipeline import run_job
    from fxflow.reports.console import make_console

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated: " + ", ".join(RECIPES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--torch-devices", default="", help="device name -> torch device, e.g. dev_0=cuda:0,dev_1=cuda:1")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up comparison")
    parser.add_argument("--out", help="keep the run records here (default: a temporary folder)")
    parser.add_argument("--json", help="write every execute stage's facts here")
    args = parser.parse_args()
    console = make_console()
    out = Path(args.out or tempfile.mkdtemp(prefix="fxflow-distributed-"))
    first_start = prestart()

    def run(recipe: str, *overrides: str, name: str | None = None):
        cfg, files = compose_recipe(recipe, list(overrides))
        run_dir = out / (name or recipe)
        return run_job(cfg, run_dir, list(overrides), files), run_dir

    devices = [f"devices.{pair.replace('=', '.torch_device=')}" for pair in args.torch_devices.split(",") if pair]
    records = {}
    for recipe in args.recipes.split(","):
        overrides = [*sizes(recipe), *devices, f"transforms.execute.repeats={args.repeats}", "transforms.execute.warmup=3"]
        state, run_dir = run(recipe, *overrides)
        console.rule(f"[bold]{recipe}[/]: {state.status}" + (f" ({state.error['message']})" if state.error else ""))
        for renderable in state.report:
            console.print(renderable, highlight=False)
        facts = state.facts.get("execute", {})
        records[recipe] = facts
        if "calibration" not in facts:
            continue
        calibration = run_dir / "execute" / facts["calibration"]["file"]
        rate = facts["calibration"]["bytes_per_s"] or 1e9
        again, _ = run(recipe, *overrides[:-2], "~transforms.execute", "~expect.metrics.execute", "report.key_metrics=[]",
                       "latency@transforms.partition.latency_model=calibrated",
                       f"transforms.partition.latency_model.path={calibration}",
                       f"transforms.partition.transfer_rate_bytes_per_sec={rate}", name=f"{recipe}-recalibrated")
        repredicted = again.facts.get("partition", {}).get("critical_path_latency")
        path = facts["critical_path"]
        console.print(f"[bold]{recipe}[/]: critical path predicted {_ms(path['predicted'])} ms | re-predicted with "
                      f"this run's calibration {_ms(repredicted)} ms | measured along the DAG "
                      f"{_ms(path['measured_dag_s'])} ms | end to end {_ms(path['measured_end_to_end_s'])} ms")
        records[recipe]["repredicted_critical_path_s"] = repredicted
    if not args.no_startup:
        records["startup"] = _startup(console, run, first_start)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, default=str))


def _startup(console, run, first_start: float) -> dict:
    """A chain run's start-up (driver + 4 workers) with the forkserver warm, and with spawn."""
    figures = {"forkserver_first_start_s": first_start}
    quiet = ("transforms.execute.measure=false", "equivalence.fresh_inputs=0", "report.pictures=false", "~expect")
    for method, times in (("forkserver", 3), ("spawn", 1)):
        totals = []
        for i in range(times):
            state, _ = run("distributed_chain", *quiet, f"transforms.execute.start_method={method}", name=f"startup-{method}-{i}")
            totals.append(state.facts["execute"]["startup"]["total_s"])
        figures[f"{method}_start_s"] = statistics.median(totals)
    imports = []
    for _ in range(3):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        imports.append(time.perf_counter() - begin)
    figures["python_import_torch_s"] = statistics.median(imports)
    console.rule("[bold]start-up[/] (driver + 4 workers)")
    console.print(f"fresh `python -c 'import torch'`: {figures['python_import_torch_s']:.2f} s | forkserver first start "
                  f"(imports torch once): {first_start:.2f} s | a run's start with the forkserver warm: "
                  f"{figures['forkserver_start_s']:.3f} s | with spawn (each rank imports torch, in parallel): "
                  f"{figures['spawn_start_s']:.2f} s")
    return figures


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


if __name__ == "__main__":
    main()
