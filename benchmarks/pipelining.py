"""fxflow's cost-based cut against torch.distributed.pipelining's equal split, on a model with uneven
layers, both run by pipelining's own schedules on two processes with one thread each.

The model is `WidthChain` (conf/model/width_chain.yaml): four 1024x1024 Linear layers, then four
128-wide ones. An equal split (four layers per stage, `pipe_split` at equal intervals) puts nearly
all the work on the first stage; fxflow's partitioner (backend fxflow, objective throughput, the
latency model timing every node with one thread) cuts where the stages take equal time.

1. fxflow's run, as `python -m fxflow recipe=pipelining_training` with the overrides below: the
   partition stage cuts the model in two, the execute stage runs the cut with
   torch.distributed.pipelining (1F1B, a training step), proves the forward on three input sets
   against the eager model and the training step's losses and gradients against the split module
   run eagerly, and times one step.
2. The two schedules (GPipe forward, 1F1B training step) timed for both cuts, fxflow's and the
   equal one, each built two ways: by fxflow (split_module on the partition's node sets, then
   `pipeline_stages`) and by pipelining's own front end (`pipeline()` with `SplitPoint.BEGINNING`
   before the second stage's first layer). The headline is fxflow's split against pipelining's
   equal split as each ships; beside it the cut alone, both built by `pipeline()` (its
   torch.export stage modules run slower per call than fxflow's, which the headline includes).
   Every pipeline's output is checked against the eager model first. Rounds alternate the order;
   each figure is the median over rounds of a round's median step time (the slowest rank's,
   every step started together).
3. Unless --no-torchrun: the same fxflow command as two torchrun ranks (`--nnodes=2 --node-rank=0/1`
   on 127.0.0.1, one process each, standing in for two hosts), each writing its own record.

    python benchmarks/pipelining.py                       # well under a minute on two idle cores
    python benchmarks/pipelining.py --rounds 5 --repeats 20 --no-torchrun --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTHS = [1024, 1024, 1024, 1024, 1024, 128, 128, 128, 128]
CUT = ("model=width_chain", "devices=two_gpu", "devices.dev_0.mem_bytes=1GB", "devices.dev_1.mem_bytes=1GB",
       "transforms.partition.backend=fxflow", "transforms.partition.objective=throughput",
       "transforms.partition.transfer_rate_bytes_per_sec=1e9")


def main() -> None:
    # Heavy imports live here: forkserver ranks import this script as __mp_main__.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # the ranks' pytree deprecation notes
    import torch
    from torch.fx import symbolic_trace
    from torch.fx.passes.split_module import split_module

    from fxflow.compose import compose_recipe
    from fxflow.distributed.pipeline_stages import pipeline_stages
    from fxflow.distributed.pipelining import PipelinedModule, TorchSplitStages
    from fxflow.distributed.plan import Slot
    from fxflow.models.staged import WidthChain
    from fxflow.pipeline import run_job

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--microbatches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--no-torchrun", action="store_true", help="skip running fxflow's command as two torchrun ranks")
    parser.add_argument("--out", help="keep the run records here (default: a temporary folder)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="fxflow-pipelining-"))
    figures: dict = {"measured": "under whatever load the machine had; rerun on idle cores for reference figures"}

    # 1. fxflow's run: the cut, the proofs, its own step time
    overrides = [*CUT, f"model.inputs.x.shape=[{args.batch},{WIDTHS[0]}]",
                 "+latency@transforms.partition.latency_model=measured_single_thread",
                 f"transforms.execute.microbatches={args.microbatches}", f"transforms.execute.repeats={args.repeats}"]
    cfg, files = compose_recipe("pipelining_training", overrides)
    state = run_job(cfg, out / "fxflow", overrides, files)
    facts = state.facts.get("execute", {})
    checks = [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in state.checks
              if c.name.startswith("equivalence")]
    print(f"fxflow run: {state.status}; record {out / 'fxflow'}")
    if state.status != "passed":
        sys.exit(f"the fxflow run did not pass: {state.error}")
    partitions = {p["id"]: p for p in state.facts["partition"]["partitions"]}
    second = partitions[facts["stages"][1]["partitions"][0]]["compute_nodes"]
    targets = {n.name: n.target for n in symbolic_trace(WidthChain(WIDTHS)).graph.nodes if n.op == "call_module"}
    order = list(targets)
    fxflow_split = targets[min(second, key=order.index)]
    layers = len(WIDTHS) - 1
    equal_split = f"layers.{2 * (layers // 2)}"  # the first Linear of the second half
    proof = facts["training"]
    figures["fxflow_run"] = {"status": state.status, "cut_before": fxflow_split, "step_s": facts["step_s"],
                             "schedule": facts["schedule"], "training_matches": proof["matches"],
                             "max_abs_grad_diff": proof["max_abs_grad_diff"], "equivalence": checks}
    print(f"  fxflow cuts before {fxflow_split} (an equal split: before {equal_split}); its 1F1B training step "
          f"{facts['step_s'] * 1e3:.2f} ms; gradients match the eager split: {proof['matches']} "
          f"(largest difference {proof['max_abs_grad_diff']:.2g})")

    # 2. both cuts, each built by fxflow (split_module + pipeline_stages) and by pipelining's own
    #    front end (pipeline() + SplitPoint), the same schedules, timed round after round
    torch.manual_seed(0)
    model = WidthChain(WIDTHS)
    x = torch.randn(args.batch, WIDTHS[0], generator=torch.Generator().manual_seed(1))
    expected = model(x).detach()
    micro = (x[: args.batch // args.microbatches],)
    stage_nodes = [{n for p in stage["partitions"] for n in partitions[p]["compute_nodes"]} for stage in facts["stages"]]
    first_of_half = order[order.index(equal_split.replace(".", "_"))]
    cuts = {
        "fxflow": (lambda n: next(k for k, nodes in enumerate(stage_nodes) if n.name in nodes), fxflow_split),
        "equal": (lambda n: int(order.index(n.name) >= order.index(first_of_half)) if n.name in order else 0, equal_split),
    }
    pipes = {}
    for cut, (stage_of, split_before) in cuts.items():
        gm = symbolic_trace(model)
        split = split_module(gm, model, stage_of)
        built = pipeline_stages(split, {0: Slot(1), 1: Slot(2)}, {"x": x})
        for frontend in ("fxflow", "pipelining"):
            stages = built.modules if frontend == "fxflow" else TorchSplitStages(model, micro, (split_before,))
            for schedule in ("gpipe", "1f1b"):
                pm = PipelinedModule(stages, ["x"], num_stages=2, schedule=schedule, microbatches=args.microbatches,
                                     timeout_s=120)
                pm.start()
                torch.testing.assert_close(pm(x), expected)  # the same function as the eager model, or no figure
                pipes[cut, frontend, schedule] = pm
    samples: dict = {key: [] for key in pipes}
    try:
        for r in range(args.rounds):
            keys = sorted(pipes, reverse=bool(r % 2))  # alternate the order, so drifting load hits both cuts
            for key in keys:
                step = "forward" if key[2] == "gpipe" else "train"
                samples[key].append(pipes[key].measure({"x": x}, repeats=args.repeats, warmup=2, step=step)["step_s"])
    finally:
        for pm in pipes.values():
            pm.close()
    figures["ab"] = {}
    median = {key: statistics.median(v) for key, v in samples.items()}
    for schedule, step in (("gpipe", "forward"), ("1f1b", "train")):
        mine, theirs = median["fxflow", "fxflow", schedule], median["equal", "pipelining", schedule]
        same = median["fxflow", "pipelining", schedule]
        row = {"step": step, "fxflow_split_s": mine, "pipelining_equal_split_s": theirs, "speedup": theirs / mine,
               "fxflow_cut_by_pipelining_frontend_s": same, "cut_only_speedup": theirs / same,
               "equal_split_by_fxflow_s": median["equal", "fxflow", schedule],
               "best_round_speedup": min(samples["equal", "pipelining", schedule])
               / min(samples["fxflow", "fxflow", schedule]),
               "samples": {"/".join(k[:2]): samples[k] for k in samples if k[2] == schedule}}
        figures["ab"][schedule] = row
        print(f"{schedule} {step} step, {args.microbatches} micro-batches of {args.batch // args.microbatches}: "
              f"fxflow's split {mine * 1e3:.2f} ms, pipelining's equal split {theirs * 1e3:.2f} ms -> x{theirs / mine:.2f}; "
              f"fxflow's cut built by pipeline() {same * 1e3:.2f} ms (x{theirs / same:.2f}), the equal split built "
              f"by fxflow {row['equal_split_by_fxflow_s'] * 1e3:.2f} ms; best rounds x{row['best_round_speedup']:.2f}")
    print(f"(medians of {args.rounds} rounds x {args.repeats} steps, two processes with one thread each; measured "
          "under whatever load the machine had: on a loaded machine the two ranks share cores, which hurts the "
          "balanced cut most; 'best rounds' compares each side's fastest round)")

    # 3. the fxflow command as two torchrun ranks on loopback
    if not args.no_torchrun:
        figures["torchrun"] = torchrun_pair(out)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))


def torchrun_pair(out: Path) -> dict:
    """`torchrun --nnodes=2 --node-rank=R ... -m fxflow` for R = 0, 1 at once; both records."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a latency model that does not time nodes: both hosts must plan the same cut
    overrides = [*CUT, "+latency@transforms.partition.latency_model=size_x2", "transforms.execute.launch=torchrun"]
    paths = (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    procs = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                   f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}", "-m", "fxflow",
                   "recipe=pipelining_training", *overrides, f"hydra.run.dir={out / f'torchrun-node{rank}'}"]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    result = {"command": " ".join(command[1:]).replace("--node-rank=1", "--node-rank=R")}
    for rank, proc in enumerate(procs):
        text, _ = proc.communicate(timeout=300)
        summary_file = out / f"torchrun-node{rank}" / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        metrics = summary.get("metrics", {})
        row = {"exit": proc.returncode, "status": summary.get("status"), "step_s": metrics.get("execute.step_s"),
               "training_matches": metrics.get("execute.training.matches"),
               "pids": [metrics.get(f"execute.ranks.{k}.pid") for k in (0, 1)]}
        result[f"node{rank}"] = row
        print(f"torchrun node {rank}: exit {row['exit']}, record {row['status']}, 1F1B training step "
              f"{(row['step_s'] or 0) * 1e3:.2f} ms, gradients match: {row['training_matches']}, rank pids {row['pids']}")
        if proc.returncode:
            print(text[-3000:])
    return result


if __name__ == "__main__":
    main()
