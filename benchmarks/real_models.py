"""Real models at their published layer counts, partitioned by fxflow over four devices.

Each model runs its shipped recipe as a fresh `python -m fxflow` process, twice: first without the
partition step, to learn the graph's bytes (weights and activations, as sizing counts them), then
as written with four devices of 30% of those bytes each, so the model needs all four. Random
weights, built from numbers (no download); transformers' models need `pip install 'fxflow[hf]'`.

    python benchmarks/real_models.py                    # every model below
    python benchmarks/real_models.py --models gpt2 bert
    python benchmarks/real_models.py --backend torch    # torch's size_based partitioner instead

Prints per model: graph nodes, partitions, devices, the equivalence check's largest difference
from the eager model (over its input sets), the proven gap, and the record's trace and partition
seconds; plus the torch and transformers versions. fxflow's backend runs its `best` algorithm
here (the recipes use `pipeline`, the optimal contiguous split, which takes milliseconds). Sizes (the recipes' tests use 1-2 layers):

- gpt2: GPT-2 small, 12 layers, 768 wide, 12 heads, 50,257-word vocabulary (124M parameters)
- bert: BERT-base, 12 layers, 768 wide, 12 heads, 3,072 MLP (110M parameters)
- llama: Llama 3.2 1B's 16 layers and grouped-query attention (32 query heads over 8 key/value
  heads), narrowed to 512 wide, 1,408 MLP and a 32,000-word vocabulary (~70M parameters) so that
  it runs in a few GB on a shared CPU machine; `--llama-full` takes the 2048-wide 1.2B model (5 GB)
- resnet18: ResNet-18 (in-repo, torchvision's architecture; 11.7M parameters) on 224x224 images
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

SEQUENCE = ["model.inputs.input_ids.shape=[1,128]"]
MODELS: dict[str, tuple[str, list[str]]] = {
    "gpt2": ("partition_hf_gpt2", [
        "model.module.layers=12", "model.module.hidden=768", "model.module.heads=12", "model.module.vocab=50257",
        "model.module.context=1024", "model.inputs.input_ids.high=50257", *SEQUENCE]),
    "bert": ("partition_hf_bert", [
        "model.module.layers=12", "model.module.hidden=768", "model.module.heads=12", "model.module.intermediate=3072",
        "model.module.vocab=30522", "model.module.context=512", "model.inputs.input_ids.high=30522", *SEQUENCE]),
    "llama": ("partition_hf_llama", [
        "model.module.layers=16", "model.module.hidden=512", "model.module.heads=32", "model.module.kv_heads=8",
        "model.module.intermediate=1408", "model.module.vocab=32000", "model.module.context=2048",
        "model.inputs.input_ids.high=32000", *SEQUENCE]),
    "resnet18": ("partition_resnet18", ["model.inputs.x.shape=[1,3,224,224]"]),
}
LLAMA_FULL = ["model.module.hidden=2048", "model.module.intermediate=8192", "model.module.vocab=128256",
              "model.inputs.input_ids.high=128256"]
DEVICES = 4
SHARE = 0.30
# The figures depend on the sizes chosen here, not on the recipes' own: judge by equivalence.
COMMON = ["report.pictures=false", "~expect.metrics", "equivalence.fresh_inputs=1"]


def fxflow(recipe: str, overrides: list[str], run_dir: Path) -> dict:
    """One fresh `python -m fxflow` run; its summary.json."""
    done = subprocess.run([sys.executable, "-m", "fxflow", f"recipe={recipe}", *overrides, f"hydra.run.dir={run_dir}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if not (run_dir / "summary.json").is_file():  # refused before the run began: say why, not a traceback
        sys.exit(f"{recipe} {' '.join(overrides)}: no run record (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads((run_dir / "summary.json").read_text())


def devices(total_bytes: int) -> list[str]:
    budget = math.ceil(total_bytes * SHARE)
    return ["devices=none", *(f"+devices.dev_{i}={{mem_bytes: {budget}, logical_id: {i}}}" for i in range(DEVICES))]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--backend", choices=["fxflow", "torch"], default="fxflow")
    parser.add_argument("--llama-full", action="store_true", help="Llama 3.2 1B's full width (1.2B parameters, ~5 GB)")
    args = parser.parse_args()
    # fxflow's `best` (the recipes pick `pipeline`, milliseconds, to keep the test suite short)
    backend = (["transforms.partition.backend=torch", "transforms.partition.mode=size_based",
                "~transforms.partition.algorithm"] if args.backend == "torch"
               else ["transforms.partition.algorithm=best"])
    print(f"torch {version('torch')}, transformers {version('transformers')}, torchvision {version('torchvision')}; "
          f"{DEVICES} devices of {SHARE:.0%} of each graph's bytes, backend {args.backend}")
    header = ("model", "status", "nodes", "bytes", "partitions", "devices", "max |diff|", "gap", "trace s", "partition s")
    print("{:<9} {:<8} {:>6} {:>14} {:>10} {:>7} {:>10} {:>7} {:>8} {:>11}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            recipe, sizes = MODELS[name]
            sizes = sizes + (LLAMA_FULL if name == "llama" and args.llama_full else [])
            sized = fxflow(recipe, [*sizes, *COMMON, "~transforms.partition"], Path(tmp) / f"{name}-size")
            if sized["status"] != "passed":
                print(f"{name:<9} {sized['status']:<8} {sized.get('skipped') or sized.get('error')}")
                continue
            total = sized["metrics"]["size_nodes.total_bytes"]
            run = fxflow(recipe, [*sizes, *COMMON, *backend, *devices(total)], Path(tmp) / f"{name}-partition")
            m, timings = run["metrics"], run["timings"]
            diffs = [c.get("max_abs_diff") for c in run["checks"] if c["name"].startswith("equivalence.")]
            worst = max((d for d in diffs if d is not None), default=float("nan"))
            gap = m.get("partition.gap")
            print(f"{name:<9} {run['status']:<8} {m.get('trace.graph_node_count', 0):>6} {total:>14,} "
                  f"{m.get('partition.num_partitions', 0):>10} {DEVICES:>7} {worst:>10.3g} "
                  f"{'-' if gap is None else f'{gap:.2%}':>7} {timings.get('trace', 0):>8.2f} "
                  f"{timings.get('transform.partition', 0):>11.2f}")
            if run["status"] != "passed":
                print(f"          {run.get('error') or [c for c in run['checks'] if not c['passed']]}")


if __name__ == "__main__":
    main()
