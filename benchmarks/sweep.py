"""Wall time of one 8-job sweep with Hydra's basic launcher (jobs one after another in this process)
and with the joblib launcher (jobs in worker processes, one per core), both started from this one
Python process through fxflow's own entry point, and their ratio.

    python benchmarks/sweep.py                    # sparse_nn on two device lists x four seeds
    python benchmarks/sweep.py --light            # parallel_towers: jobs of ~0.1 s, start-up dominates

Needs the joblib extra: pip install -e '.[joblib]'.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from fxflow.cli import main

HEAVY = ["recipe=sparse_nn", "devices=two_gpu,three_gpu", "seed=0,1,2,3"]
LIGHT = ["recipe=partition_latency", "model=parallel_towers", "devices=three_of_1500b,four_of_1200b",
         "transforms.partition.mode=size_based,cost_aware", "seed=0,1"]


def sweep(args: list[str], sweep_dir: Path) -> tuple[float, int, int]:
    """(seconds, exit code, jobs that passed) of `python -m fxflow -m ARGS`, run in this process."""
    GlobalHydra.instance().clear()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["-m", *args, "report.pictures=false", f"hydra.sweep.dir={sweep_dir}"])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    seconds = time.perf_counter() - start
    jobs = json.loads((sweep_dir / "sweep_summary.json").read_text())["jobs"]
    return seconds, code, sum(job["status"] == "passed" for job in jobs)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", action="store_true", help="tiny jobs: measures the launchers' start-up")
    args = parser.parse_args()
    jobs = LIGHT if args.light else HEAVY
    with tempfile.TemporaryDirectory() as tmp:
        basic = sweep(jobs, Path(tmp) / "basic")
        joblib = sweep([*jobs, "hydra/launcher=joblib"], Path(tmp) / "joblib")
    for name, (seconds, code, passed) in (("basic", basic), ("joblib", joblib)):
        print(f"{name:>6}: {seconds:6.2f} s, exit code {code}, {passed}/8 jobs passed")
    print(f"joblib / basic wall time = {joblib[0] / basic[0]:.2f}  ({' '.join(jobs)})")


if __name__ == "__main__":
    main_()
