"""How accurate is a cost model fitted by one calibration run, on models it was not calibrated on?

    PYTHONPATH=$PWD python benchmarks/cost_model.py            # about 3 minutes on 2 idle cores
    PYTHONPATH=$PWD python benchmarks/cost_model.py --plans 20 --rounds 6

1. Calibrate: `python -m fxflow recipe=distributed_calibrate_cost` (`UnevenMix`: an embedding, an
   uneven Linear chain, causal self-mixing with layer_norm, batched matmul, masked_fill and softmax;
   eight partitions on two worker processes, measured on three starts of the workers) writes
   <run>/execute/fitted_cost.json.
2. Held out: every way of splitting the six towers of `UnevenTowers` (widths 64 ... 2048) over one or
   two workers (the widest tower stays on the first, so no plan is another's mirror image) is a
   candidate plan. Each is predicted with the fitted file (`predict_placement`) and measured with the
   execute machinery (`DistributedModule.measure`: one worker process per device, one torch thread
   each, after warm-up), every plan once a round, in a new order each round, `--rounds` times. A
   second held-out model, MiniGPT cut at each block boundary over two workers, adds partitions of
   attention, softmax, masked_fill and embeddings to the per-partition error.
3. Prints: per-partition median |predicted/measured - 1|, Spearman of predicted vs measured step time
   over all tower plans (scipy.stats.spearmanr), and the measured step of the plan the model picks
   over the best measured one; each with "measured" read as the fastest request of all rounds (what
   the fit uses: the least disturbed by other work) and as the median of the rounds' medians. Each
   plan's step is bracketed by the same figure from the even and from the odd rounds
   (fxflow.distributed.ranking): the bracket's width over the figure is the spread; plan pairs whose
   brackets overlap are ties the measurement cannot order, and of the other pairs it prints how many
   the model orders the same way, and Spearman over a chain of plans each distinguishable from the
   next (picked from the measurements alone).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
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
        return dm.measure(inputs, repeats=repeats, warmup=4, probe_repeats=repeats)


def evaluate(cost, label: str, split, placement, inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's prediction; `measure_round` adds its measurements."""
    from fxflow.distributed.cost_fit import predict_placement

    predicted = predict_placement(cost, split, placement, list(inputs.values()))
    return {"plan": label, "predicted_step_s": predicted["step_s"], "predicted": predicted["partitions"],
            "split": split, "placement": placement, "inputs": inputs, "rounds": []}


def measure_round(row: dict[str, Any], repeats: int) -> None:
    row["rounds"].append(measure(row["split"], row["placement"], row["inputs"], repeats))


def _round_figures(measurement: dict[str, Any], statistic: str) -> tuple[float, dict[int, float]]:
    """One round's step and per-partition seconds, read as its fastest request or its median."""
    key = "_min_s" if statistic == "min" else "_s"
    return (measurement["end_to_end" + key],
            {p["id"]: p["compute" + key] for p in measurement["partitions"]})


def summarize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per plan and statistic ("min": the fastest request of all rounds, what the fit uses;
    "median": the median of the rounds' median requests): the step and each partition's seconds, and
    the step's bracket (fxflow.distributed.ranking.split_half: the even rounds against the odd)."""
    from fxflow.distributed.ranking import aggregate, split_half

    out = []
    for row in rows:
        entry = {"plan": row["plan"], "predicted_step_s": row["predicted_step_s"],
                 "workers": row["rounds"][0]["world_size"] - 1,
                 "partitions": [{"id": pid, "predicted_s": s} for pid, s in sorted(row["predicted"].items())]}
        for statistic in ("min", "median"):
            figures = [_round_figures(r, statistic) for r in row["rounds"]]
            steps = [step for step, _ in figures]
            entry[f"{statistic}_step_s"], entry[f"{statistic}_step_range_s"] = split_half(steps, statistic)
            entry[f"{statistic}_step_rounds_s"] = steps
            for part in entry["partitions"]:
                part[f"{statistic}_s"] = aggregate([parts[part["id"]] for _, parts in figures], statistic)
        out.append(entry)
    return out


def round_slowdown(rows: list[dict[str, Any]]) -> list[float]:
    """Per round (in the order run), the median over the plans of that round's fastest request over
    the plan's fastest of all rounds: how much slower the machine ran then (other work, heat)."""
    rounds = len(rows[0]["min_step_rounds_s"])
    return [statistics.median(r["min_step_rounds_s"][k] / r["min_step_s"] for r in rows) for k in range(rounds)]


def ranking_figures(rows: list[dict[str, Any]], statistic: str) -> dict[str, Any]:
    """fxflow.distributed.ranking.rank_agreement over the plans, with plan names."""
    from fxflow.distributed.ranking import rank_agreement

    f = rank_agreement([r["predicted_step_s"] for r in rows], [r[f"{statistic}_step_s"] for r in rows],
                       [r[f"{statistic}_step_range_s"] for r in rows])
    return {**f, "chosen": rows[f["chosen"]]["plan"], "best": rows[f["best"]]["plan"], "chain_plans": len(f["chain"]),
            "chain": [rows[i]["plan"] for i in f["chain"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=32, help="tower plans to measure (at most 32)")
    parser.add_argument("--repeats", type=int, default=4, help="timed requests per plan and round")
    parser.add_argument("--rounds", type=int, default=12,
                        help="times every plan is measured (on freshly started workers), in a new order each round; "
                             "a worker's speed varies ~10%% between starts, so more rounds pin each plan's figure down")
    parser.add_argument("--fitted", type=Path, help="use this fitted_cost.json instead of calibrating")
    parser.add_argument("--json", type=Path, help="also write every row here")
    options = parser.parse_args()

    import torch
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
        order = random.Random(0)
        for _ in range(options.rounds):  # every plan once a round, in a new order each round
            for row in order.sample(rows + gpt_rows, len(rows + gpt_rows)):
                measure_round(row, options.repeats)
        raw = [{k: row[k] for k in ("plan", "predicted_step_s", "predicted", "rounds")} for row in rows + gpt_rows]
        rows, gpt_rows = summarize_rows(rows), summarize_rows(gpt_rows)
    total_s = time.perf_counter() - started

    print(f"calibrated by: {'recipe=distributed_calibrate_cost (UnevenMix)' if not options.fitted else options.fitted}, "
          f"{cost.calibration.get('nodes')} nodes, {cost.calibration.get('partitions')} partitions, fitted to the "
          f"{cost.calibration.get('statistic')} request; fit on its own run: node median error "
          f"{cost.fit.get('node_median_rel_error', 0):.1%}, partition {cost.fit.get('partition_median_rel_error') or 0:.1%}; "
          f"a worker's partition = {cost.partition.scale:.3f} x its nodes + {cost.partition.overhead_s * 1e6:.0f} us, "
          f"a crossing {cost.transfer.latency_s * 1e6:.0f} us + bytes / {cost.transfer.bytes_per_s / 1e9:.2f} GB/s")
    print(f"{'plan':36} {'workers':>7} {'pred ms':>8} {'min ms':>8} {'(even/odd range)':>19} {'median ms':>9}")
    for r in rows + gpt_rows:
        lo, hi = r["min_step_range_s"]
        print(f"{r['plan']:36} {r['workers']:>7} {r['predicted_step_s'] * 1e3:8.2f} {r['min_step_s'] * 1e3:8.2f} "
              f"{f'({lo * 1e3:.2f}-{hi * 1e3:.2f})':>19} {r['median_step_s'] * 1e3:9.2f}")
    print()
    print(f"cost model accuracy on held-out models (one calibration run; {len(rows)} UnevenTowers plans, "
          f"{len(gpt_rows)} MiniGPT plans; {options.rounds} rounds x {options.repeats} requests a plan)")
    print(f"{'measured as':12} {'part err towers':>15} {'part err gpt':>12} {'part err all':>12} {'spearman':>8} "
          f"{'chosen/best':>11} {'spread':>13} {'ties':>7} {'ordered agree':>13} {'chain spearman':>16}")
    figures = {}
    for statistic in ("min", "median"):
        def errors(of: list[dict[str, Any]]) -> list[float]:
            return [abs(p["predicted_s"] / p[f"{statistic}_s"] - 1) for r in of for p in r["partitions"]]

        tower_err, gpt_err = errors(rows), errors(gpt_rows)
        figures[statistic] = f = {
            "partition_error_towers": statistics.median(tower_err),
            "partition_error_gpt": statistics.median(gpt_err) if gpt_err else None,
            "partition_error_all": statistics.median(tower_err + gpt_err), **ranking_figures(rows, statistic)}
        chain = f"{f['spearman_chain']:.3f} ({f['chain_plans']})" if f["spearman_chain"] is not None else "-"
        spread = f"{f['spread_median']:.1%}/{f['spread_max']:.1%}"
        ties, agree = f"{f['ties']}/{f['pairs']}", f"{f['ordered_agree']}/{f['pairs'] - f['ties']}"
        print(f"{statistic:12} {f['partition_error_towers']:15.1%} {(f['partition_error_gpt'] or 0):12.1%} "
              f"{f['partition_error_all']:12.1%} {f['spearman']:8.3f} {f['chosen_over_best']:11.3f} "
              f"{spread:>13} {ties:>7} {agree:>13} {chain:>16}")
    print("targets: per-partition median |pred/meas - 1| <= 10% (goal 5%), Spearman >= 0.9, chosen/best <= 1.05")
    print("spread: a plan's range (the figure from the even rounds and from the odd rounds) / its figure, "
          "median/max over the plans; ties: plan pairs whose "
          "ranges overlap (the measurement cannot order them); ordered agree: of the other pairs, how many the "
          "model orders the same way; chain: Spearman over a largest run of plans each distinguishable from the "
          "next (picked from the measurements alone)")
    print("each round's speed (the median over plans of the round's fastest request over the plan's fastest of "
          "all rounds; 1.00 = undisturbed): " + " ".join(f"{x:.2f}" for x in round_slowdown(rows + gpt_rows)))
    f = figures["min"]
    print(f"chosen by the model: {f['chosen']}; best measured (min): {f['best']}; "
          f"{'within' if f['chosen_tied_with_best'] else 'beyond'} the rounds' spread of each other")
    print(f"wall time {total_s:.0f} s (calibration {calibrated_s:.0f} s); one torch thread per worker, "
          "at most 2 workers; partition errors over every partition of every plan")
    if options.json:
        options.json.write_text(json.dumps({"rows": rows, "gpt_rows": gpt_rows, "figures": figures, "measured": raw,
                                            "cost": cost.model_dump()}, indent=1, default=str))


if __name__ == "__main__":
    main()
