"""The whole `python -m fxflow recipe=partition_bench_10k` run at 10,002 nodes (start-up, trace,
sizing, partitioning, equivalence checks, report and picture), with fxflow's partitioner and,
in the same benchmark, with torch's (backend=torch, size_based), as fresh processes; or
`partition_bench_100k` at 100,002 nodes (`--size 100k`, fxflow's only: torch's does not finish).

    python benchmarks/partition_cli.py              # both backends, median of 1 run each
    python benchmarks/partition_cli.py --runs 3
    python benchmarks/partition_cli.py --no-torch   # fxflow's only (torch's takes 30-100 s)
    python benchmarks/partition_cli.py --size 100k  # 100,002 nodes

Prints wall seconds per backend, the CPU seconds (user + sys) and peak memory of the process (less
affected than wall time by other work on the machine), the record's own step timings (sizing +
partition is what issue #18 bounds at 10 s for 100k nodes; `run` is the record's total, the rest
of the wall time is start-up), the critical path, its proven gap, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = {"10k": "partition_bench_10k", "100k": "partition_bench_100k"}
TORCH = ["transforms.partition.backend=torch", "~transforms.partition.algorithm"]


def run(recipe: str, extra: list[str], run_dir: Path) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds (user + sys), peak resident MB and summary of one fresh process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "fxflow", f"recipe={recipe}", *extra, f"hydra.run.dir={run_dir}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # reaps the child: its own CPU time and peak memory
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--size", choices=sorted(RECIPES), default="10k", help="10k (both backends) or 100k (fxflow's)")
    args = parser.parse_args()
    recipe = RECIPES[args.size]
    backends = {"fxflow": []} if args.no_torch or args.size != "10k" else {"fxflow": [], "torch": TORCH}
    results: dict[str, list[tuple[float, float, float, dict]]] = {name: [] for name in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, extra in backends.items():
                results[name].append(run(recipe, extra, Path(tmp) / f"{name}{i}"))
    print(f"{recipe}: wall and CPU seconds of the whole command, the record's step timings (wall), peak memory\n")
    print(f"{'backend':8} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'status':8} {'build':>6} {'trace':>6} {'sizing':>7} "
          f"{'partition':>9} {'size+part':>9} {'check':>6} {'run':>6} {'critical path':>14} {'gap':>7}")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        peak = max(r[2] for r in runs)
        medians[name] = wall
        summary = runs[-1][3]
        t, m = summary["timings"], summary["metrics"]
        gap = m.get("partition.gap")
        print(f"{name:8} {wall:7.2f} {cpu:6.2f} {peak:8.0f} {summary['status']:8} {t.get('build', 0):6.2f} "
              f"{t.get('trace', 0):6.2f} {t.get('transform.size_nodes', 0):7.2f} "
              f"{t.get('transform.partition', 0):9.2f} "
              f"{t.get('transform.size_nodes', 0) + t.get('transform.partition', 0):9.2f} {t.get('check.partition', 0):6.2f} "
              f"{t.get('total', 0):6.2f} "
              f"{m.get('partition.critical_path_latency', float('nan')):14.0f} "
              + (f"{100 * gap:6.3f}%" if gap is not None else f"{'-':>7}"))
    if "torch" in medians:
        print(f"fxflow / torch wall time: {medians['fxflow'] / medians['torch']:.3f}")


if __name__ == "__main__":
    main()
