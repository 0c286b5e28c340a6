"""The whole `python -m fxflow recipe=partition_bench_10k` run at 10,002 nodes (start-up, trace,
sizing, partitioning, equivalence checks, report and picture), with fxflow's partitioner and,
in the same benchmark, with torch's (backend=torch, size_based), as fresh processes.

    python benchmarks/partition_cli.py              # both backends, median of 1 run each
    python benchmarks/partition_cli.py --runs 3
    python benchmarks/partition_cli.py --no-torch   # fxflow's only (torch's takes 30-100 s)

Prints wall seconds per backend, the record's own step timings, the critical paths and the ratio.
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

RECIPE = ["recipe=partition_bench_10k"]
TORCH = ["transforms.partition.backend=torch", "~transforms.partition.algorithm"]


def run(extra: list[str], run_dir: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fxflow", *RECIPE, *extra, f"hydra.run.dir={run_dir}"],
                   check=False, capture_output=True)
    wall = time.perf_counter() - start
    return wall, json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    backends = {"fxflow": []} if args.no_torch else {"fxflow": [], "torch": TORCH}
    results: dict[str, list[tuple[float, dict]]] = {name: [] for name in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, extra in backends.items():
                results[name].append(run(extra, Path(tmp) / f"{name}{i}"))
    print(f"{'backend':8} {'wall s':>7} {'status':8} {'trace':>6} {'sizing':>7} {'partition':>9} {'check':>6} "
          f"{'critical path':>14}")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        medians[name] = wall
        summary = runs[-1][1]
        t, m = summary["timings"], summary["metrics"]
        print(f"{name:8} {wall:7.2f} {summary['status']:8} {t.get('trace', 0):6.2f} {t.get('transform.size_nodes', 0):7.2f} "
              f"{t.get('transform.partition', 0):9.2f} {t.get('check.partition', 0):6.2f} "
              f"{m.get('partition.critical_path_latency', float('nan')):14.0f}")
    if "torch" in medians:
        print(f"fxflow / torch wall time: {medians['fxflow'] / medians['torch']:.3f}")


if __name__ == "__main__":
    main()
