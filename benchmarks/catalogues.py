"""The whole of torch's catalogues, not the recipes' slices: every OpInfo of `op_db` with every
sample (`normalize_operator_exhaustive` with `limit=null max_samples=null`) and every nn module
case (`normalize_modules_exhaustive`), each as a fresh `python -m fxflow` process.

    python benchmarks/catalogues.py                # both catalogues (the OpInfo one takes minutes)
    python benchmarks/catalogues.py --only ops     # or --only modules

Prints, per catalogue, the wall seconds, the run's status and its counts (passed, failed,
skipped, expected failures, unexpected passes, samples) and names every failed case. The
catalogue's own failures are binding in any run, so the exit code is non-zero when any case
failed: a CI job that may take minutes can run this as it is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATALOGUES = {
    "ops": ("normalize_operator_exhaustive", ["transforms.ops.limit=null", "transforms.ops.max_samples=null"]),
    "modules": ("normalize_modules_exhaustive", []),
}
COUNTS = ("total", "passed", "failed", "skipped", "expected_failures", "samples")


def run(recipe: str, overrides: list[str], run_dir: Path) -> tuple[float, int, dict]:
    """One fresh process; (wall seconds, exit code, summary.json)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fxflow", f"recipe={recipe}", *overrides, f"hydra.run.dir={run_dir}"],
                          check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        sys.exit(f"{recipe}: no summary.json (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.returncode, json.loads(summary_path.read_text())


def report(stage: str, wall: float, code: int, summary: dict) -> None:
    metrics = summary["metrics"]
    counts = ", ".join(f"{name} {metrics[f'{stage}.{name}']}" for name in COUNTS if f"{stage}.{name}" in metrics)
    print(f"{summary['recipe']}: {summary['status']} (exit {code}) in {wall:.1f} s; {counts}")
    if summary.get("error"):
        print(f"  error: {summary['error']['message']}")
    reasons = {k.removeprefix(f"{stage}.skip_reasons."): v for k, v in metrics.items()
               if k.startswith(f"{stage}.skip_reasons.")}
    if reasons:
        print("  skipped: " + ", ".join(f"{count} {reason}" for reason, count in reasons.items()))
    unexpected = metrics.get(f"{stage}.unexpected_passes") or []
    if unexpected:
        print(f"  unexpected passes ({len(unexpected)}): {', '.join(unexpected)}")
    for failure in metrics.get(f"{stage}.failures") or []:
        print(f"  failed: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CATALOGUES), action="append")
    args = parser.parse_args()
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.only or list(CATALOGUES):
            recipe, overrides = CATALOGUES[stage]
            wall, code, summary = run(recipe, overrides, Path(tmp) / stage)
            report(stage, wall, code, summary)
            worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
