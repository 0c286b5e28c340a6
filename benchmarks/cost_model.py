"""How accurate is a cost model fitted by one calibration run, on models it was not calibrated on?

    PYTHONPATH=$PWD python benchmarks/cost_model.py            # about 1-3 minutes on 2 idle cores
    PYTHONPATH=$PWD python benchmarks/cost_model.py --plans 20 --rounds 3

1. Calibrate: `python -m fxflow recipe=distributed_calibrate_cost` (an uneven Linear chain, eight partitions on two
   worker processes) writes <run>/execute/fitted_cost.json.
2. Held out: every way of splitting the six towers of `UnevenTowers` (widths 64 ... 2048) over one or
   two workers (the widest tower stays on the first, so no plan is another's mirror image) is a
   candidate plan. Each is predicted with the fitted file (`predict_placement`) and measured with the
   execute machinery (`DistributedModule.measure`: one worker process per device, one torch thread
   each, after warm-up), every plan in turn, `--rounds` times. A second held-out model, MiniGPT cut at each block boundary over
   two workers, adds partitions of other op kinds (attention, softmax, embeddings) to the
   per-partition error.
3. Prints: per-partition median |predicted/measured - 1|, Spearman of predicted vs measured step time
   over the tower plans (scipy.stats.spearmanr), and the measured step of the plan the model picks
   over the best measured one; each with "measured" read as the fastest of the timed requests (what
   the fit uses: least disturbed by other work) and as their median.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def calibrate(folder: Path) -> Path:
    """Run the calibration recipe as a user would; return its fitted_cost.json."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = folder / "calibration"
    done = subprocess.run([sys.executable, "-m", "fxflow", "recipe=distributed_calibrate_cost", f"hydra.run.dir={run}"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    status = json.loads((run / "summary.json").read_text())["status"] if (run / "summary.json").exists() else None
    if done.returncode or status != "passed":
        sys.exit(f"calibration run failed ({status}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return run / "execute" / "fitted_cost.json"


def tower_plans(towers: int, limit: int) -> list[tuple[int, ...]]:
    """Sets of towers on the second worker: the widest (last) always stays on the first."""
    subsets = [s for r in range(towers) for s in itertools.combinations(range(towers - 1), r)]
    return subsets[:limit]


def split_towers(gm, on_second: tuple[int, ...]):
    """Partition 0: the first worker's towers, 1: the second's, 2: the sums (first worker)."""
    from torch.fx.passes.split_module import split_module

    def part(node) -> int:
        if node.name.startswith("towers_"):
            return 1 if int(node.name.split("_")[1]) in on_second else 0
        return 2

    split = split_module(gm, gm, part)
    pids = sorted(int(name.split("_")[1]) for name, _ in split.named_children() if name.startswith("submod_"))
    placement = {pid: (2 if pid == 1 else 1, "cpu") for pid in pids}
    return split, placement


def split_chain(gm, cut: str):
    """Two partitions of a chain: the nodes up to `cut` on the first worker, the rest on the second."""
    from torch.fx.passes.split_module import split_module

    order = [n.name for n in gm.graph.nodes]
    boundary = order.index(cut)
    split = split_module(gm, gm, lambda n: 0 if order.index(n.name) <= boundary else 1)
    return split, {0: (1, "cpu"), 1: (2, "cpu")}


def measure(split, placement, inputs: dict[str, Any], repeats: int) -> dict[str, Any]:
    from fxflow.distributed import DistributedModule

    with DistributedModule(split, placement, "gloo", threads_per_worker=1) as dm:
        return dm.measure(inputs, repeats=repeats, warmup=2, probe_repeats=repeats)


def evaluate(cost, label: str, split, placement, inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's prediction; `measure_round` adds its measurements."""
    from fxflow.distributed.cost_fit import predict_placement

    predicted = predict_placement(cost, split, placement, list(inputs.values()))
    return {"plan": label, "predicted_step_s": predicted["step_s"], "predicted": predicted["partitions"],
            "split": split, "placement": placement, "inputs": inputs, "rounds": []}


def measure_round(row: dict[str, Any], repeats: int) -> None:
    row["rounds"].append(measure(row["split"], row["placement"], row["inputs"], repeats))


def summarize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per plan over its rounds: the fastest request and the median of the rounds' medians, per
    partition and end to end (rounds far apart in time: a burst of other work spoils one, not all)."""
    out = []
    for row in rows:
        rounds = row["rounds"]
        parts = [{"id": p["id"], "predicted_s": row["predicted"][p["id"]],
                  "min_s": min(next(q for q in r["partitions"] if q["id"] == p["id"])["compute_min_s"] for r in rounds),
                  "median_s": statistics.median(next(q for q in r["partitions"] if q["id"] == p["id"])["compute_s"]
                                                for r in rounds)}
                 for p in rounds[0]["partitions"]]
        out.append({"plan": row["plan"], "predicted_step_s": row["predicted_step_s"], "partitions": parts,
                    "min_step_s": min(r["end_to_end_min_s"] for r in rounds),
                    "median_step_s": statistics.median(r["end_to_end_s"] for r in rounds),
                    "workers": rounds[0]["world_size"] - 1})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=32, help="tower plans to measure (at most 32)")
    parser.add_argument("--repeats", type=int, default=6, help="timed requests per plan and round")
    parser.add_argument("--rounds", type=int, default=2, help="times every plan is measured, in turn")
    parser.add_argument("--fitted", type=Path, help="use this fitted_cost.json instead of calibrating")
    parser.add_argument("--json", type=Path, help="also write every row here")
    options = parser.parse_args()

    import torch
    from scipy.stats import spearmanr
    from torch.fx import symbolic_trace

    from fxflow.distributed import prestart
    from fxflow.models.gpt import MiniGPT
    from fxflow.models.uneven import UnevenTowers
    from fxflow.partitioning.fitted_cost import FittedCost

    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fxflow_cost_") as tmp:
        path = options.fitted or calibrate(Path(tmp))
        cost = FittedCost.load(path, "--fitted")
        calibrated_s = time.perf_counter() - started
        prestart()
        torch.manual_seed(0)
        towers = UnevenTowers().eval()
        tower_inputs = {"x": torch.randn(256, 256)}
        gm = symbolic_trace(towers)
        rows = []
        for on_second in tower_plans(len(towers.towers), options.plans):
            split, placement = split_towers(gm, on_second)
            label = "towers " + ("all on w1" if not on_second else "w2 gets " + ",".join(map(str, on_second)))
            rows.append(evaluate(cost, label, split, placement, tower_inputs))
        gpt = MiniGPT(vocab=512, context=64, dim=128, heads=4, layers=4).eval()
        gpt_inputs = {"tokens": torch.randint(0, 512, (8, 64))}
        gpt_gm = symbolic_trace(gpt)
        gpt_rows = []
        adds = [n.name for n in gpt_gm.graph.nodes if n.name.startswith("add")]
        for cut in adds[1::2][:3]:  # after each block's second residual add
            split, placement = split_chain(gpt_gm, cut)
            gpt_rows.append(evaluate(cost, f"mini_gpt cut after {cut}", split, placement, gpt_inputs))
        for _ in range(options.rounds):
            for row in rows + gpt_rows:
                measure_round(row, options.repeats)
        rows, gpt_rows = summarize_rows(rows), summarize_rows(gpt_rows)
    total_s = time.perf_counter() - started

    print(f"calibrated on: UnevenChain (recipe=distributed_calibrate_cost), {cost.calibration.get('nodes')} nodes, "
          f"{cost.calibration.get('partitions')} partitions, fitted to the {cost.calibration.get('statistic')} request; "
          f"fit on its own run: node median error {cost.fit.get('node_median_rel_error', 0):.1%}, "
          f"partition {cost.fit.get('partition_median_rel_error') or 0:.1%}")
    print(f"{'plan':36} {'workers':>7} {'pred ms':>8} {'min ms':>8} {'median ms':>9}")
    for r in rows + gpt_rows:
        print(f"{r['plan']:36} {r['workers']:>7} {r['predicted_step_s'] * 1e3:8.2f} {r['min_step_s'] * 1e3:8.2f} "
              f"{r['median_step_s'] * 1e3:9.2f}")
    print()
    print(f"cost model accuracy on held-out models (one calibration run; {len(rows)} UnevenTowers plans, "
          f"{len(gpt_rows)} MiniGPT plans)")
    print(f"{'measured as':12} {'part err towers':>15} {'part err gpt':>12} {'part err all':>12} {'spearman':>8} "
          f"{'chosen/best':>11}")
    figures = {}
    for statistic in ("min", "median"):
        def errors(of):
            return [abs(p["predicted_s"] / p[f"{statistic}_s"] - 1) for r in of for p in r["partitions"]]

        predicted = [r["predicted_step_s"] for r in rows]
        measured = [r[f"{statistic}_step_s"] for r in rows]
        chosen = min(range(len(rows)), key=lambda i: predicted[i])
        tower_err, gpt_err = errors(rows), errors(gpt_rows)
        figures[statistic] = {
            "partition_error_towers": statistics.median(tower_err),
            "partition_error_gpt": statistics.median(gpt_err) if gpt_err else None,
            "partition_error_all": statistics.median(tower_err + gpt_err),
            "spearman": float(spearmanr(predicted, measured).statistic),
            "chosen_over_best": measured[chosen] / min(measured),
            "chosen": rows[chosen]["plan"], "best": rows[measured.index(min(measured))]["plan"]}
        f = figures[statistic]
        print(f"{statistic:12} {f['partition_error_towers']:15.1%} {(f['partition_error_gpt'] or 0):12.1%} "
              f"{f['partition_error_all']:12.1%} {f['spearman']:8.3f} {f['chosen_over_best']:11.3f}")
    print("targets: per-partition median |pred/meas - 1| <= 10% (goal 5%), Spearman >= 0.9, chosen/best <= 1.05")
    print(f"chosen by the model: {figures['min']['chosen']}; best measured (min): {figures['min']['best']}")
    print(f"wall time {total_s:.0f} s (calibration {calibrated_s:.0f} s); one torch thread per worker, "
          "at most 2 workers; partition errors over every partition of every plan")
    if options.json:
        options.json.write_text(json.dumps({"rows": rows, "gpt_rows": gpt_rows, "figures": figures,
                                            "cost": cost.model_dump()}, indent=1))


if __name__ == "__main__":
    main()
