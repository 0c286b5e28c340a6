"""Wall time of the README's 4-job sweep with Hydra's basic launcher (jobs one after another in the
launching process) and with the joblib launcher (jobs in loky worker processes, warmed while the
sweep is set up: fxflow/launch.py), each as `python -m fxflow -m ...` in a fresh process, the way a
user runs it, without a named sweep folder (each run in its own temporary working folder); and
their ratio.

    python benchmarks/sweep.py                    # the README's sweep (partition_latency, 4 jobs)
    python benchmarks/sweep.py --heavy            # sparse_nn on two device lists x four seeds (8 jobs)

Needs the joblib extra: pip install -e '.[joblib]'. The figure depends on the cores free: with
every core busy a parallel launcher only adds processes to share them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README_SWEEP = ["recipe=partition_latency", "model=parallel_towers", "devices=three_of_1500b,four_of_1200b",
                "transforms.partition.mode=size_based,cost_aware"]
HEAVY = ["recipe=sparse_nn", "devices=two_gpu,three_gpu", "seed=0,1,2,3"]


def sweep(args: list[str]) -> tuple[float, int, int, int]:
    """(seconds, exit code, jobs, jobs passed) of `python -m fxflow -m ARGS` in a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "fxflow", "-m", *args], cwd=tmp, env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        folders = list(Path(tmp, "outputs", "multirun").glob("*/*/sweep_summary.json"))
        jobs = json.loads(folders[0].read_text())["jobs"] if len(folders) == 1 else []
    return seconds, proc.returncode, len(jobs), sum(job["status"] == "passed" for job in jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heavy", action="store_true", help="sparse_nn x 8 jobs instead of the README's sweep")
    jobs = HEAVY if parser.parse_args().heavy else README_SWEEP
    basic = sweep(jobs)
    joblib = sweep([*jobs, "hydra/launcher=joblib"])
    for name, (seconds, code, count, passed) in (("basic", basic), ("joblib", joblib)):
        print(f"{name:>6}: {seconds:6.2f} s, exit code {code}, {passed}/{count} jobs passed")
    print(f"joblib / basic wall time = {joblib[0] / basic[0]:.2f} on {os.cpu_count()} cores  ({' '.join(jobs)})")


if __name__ == "__main__":
    main()
