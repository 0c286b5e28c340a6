"""Run a partitioned module the way it would be deployed: one process per device, activations
sent between them over torch.distributed, and the figures put beside the partitioner's prediction.

    from fxflow.distributed import (DistributedModule, placement_from_facts,
                                    compare_with_prediction, calibrated_latency)

    placement = placement_from_facts(facts["partitions"], {"dev_0": "cpu", "dev_1": "cpu"})
    with DistributedModule(split, placement, backend="gloo") as dm:
        out = dm(a, b, offset)                               # forward's arguments
        measurement = dm.measure({"a": a, "b": b, "offset": offset}, repeats=10, microbatches=4)
    table = compare_with_prediction(measurement, facts)   # measured beside predicted
    calibration = calibrated_latency(measurement, split)  # a measured latency model

`split` is a split module: torch's Partitioner `module_with_submodules` (or `split_module`'s
result), a top-level graph calling `submod_<partition id>` children. `facts` are the Partition
transform's facts (`partitions[*]` with `id`, `devices`, `logical_device_ids`, `parents`,
`children`, optional `latency` = [mem, compute, overall]; optional `critical_path_latency`).
In a recipe, the execute stage (fxflow.transforms.execute) does all of the above after a
partition stage, reading the facts from the split module's `meta`.

Processes. Rank 0 is the *driver*, a process of its own: it holds each request's inputs (the
placeholders), runs top-level glue and assembles the output. Ranks 1..W are *workers*, one per
device that holds a partition; `submod_<pid>` runs on the rank its placement names, a `getitem`
on a submodule's tuple where the tuple is made, `get_attr` constants are copied once at start-up
to the ranks that read them. The caller only starts, commands and watches these processes over
pipes; it never joins the process group, so no global torch.distributed state is left in it.
Ranks meet over a TCPStore the caller hosts on 127.0.0.1 at a port the OS picks per run. Every
value that crosses ranks (a pytree of tensors and plain values: tuples, lists, dicts, ints) is
sent point to point (`isend`/`irecv`). Backend "gloo" for CPU devices; "nccl" where devices are
CUDA (`"cuda:N"` in the placement): the process group is then "cpu:gloo,cuda:nccl", CUDA-to-CUDA
payloads go over NCCL and everything else over gloo. Execution is forward-only, under
`torch.no_grad()`; random ops draw from each rank's own generator (seeded with `seed`).

Start-up. Ranks fork from a multiprocessing forkserver that imported torch once: the first run
in a process pays for the forkserver (about 2 s here, `prestart()` pays it up front), later
runs start W+1 ranks in about 0.1-0.3 s. 'spawn' (each rank imports torch) is selectable.
A caller that is a script (`python x.py`) is re-run as __mp_main__ by every rank, as with any
multiprocessing child: keep its heavy imports under `if __name__ == "__main__":`.

Ending. Any command that fails ends every rank (SIGTERM, join with a deadline, SIGKILL) and
raises: `WorkerFailed` (a rank raised: its exception type, message, traceback, partition and
step travel in `.record`; or it died: its exit code or signal), `RunTimeout` (no reply within
`timeout_s`; `.record["busy"]` says what each rank was running or waiting for), `KeyboardInterrupt`
on Ctrl-C, `Terminated` on SIGTERM. Ranks also exit when the caller's process disappears.

Public API
----------
`Slot(rank, device="cpu", device_name=None)`, `SlotAssignment(slots, replicated)`,
`SlotAssignment.of(mapping)` (pid -> Slot, (rank, device) or {"rank", "device"}).
`placement_from_facts(partitions, torch_devices=None) -> SlotAssignment`: one worker per device name
  holding a partition (ranks by logical id); a replicated partition runs on the candidate hosting
  most of its neighbours; `SlotAssignment.replicated` keeps every candidate.
`build_plan(split, placement) -> Plan`: the data flow (`steps`, `edges`, `partition_dag`,
  `is_chain()`, `describe()`), without starting anything.
`DistributedModule(split, placement, backend="gloo", *, timeout_s=60.0, start_timeout_s=None,
  start_method="forkserver", threads_per_worker=1, host="127.0.0.1", seed=0)`:
  `.start() -> startup dict`, `.close()`, context manager; `__call__(*args, **kwargs)`,
  `.bind(*args, **kwargs) -> inputs dict`, `.run(list of input dicts) -> outputs`, `.describe()` (where
  everything runs, start-up; the measurement's first keys),
  `.measure(inputs, *, repeats=10, warmup=2, probe_repeats=10, microbatches=0, split_inputs=None)
  -> measurement`; `.plan`, `.placement`, `.startup`, `.cluster.pids`, `.cluster.failure`.
`run_partitioned(split, placement, inputs, backend="gloo", *, measure=True, repeats, warmup,
  probe_repeats, microbatches, split_inputs, **DistributedModule options) -> (output, record)`.
`compare_with_prediction(measurement, facts) -> {"partitions": [{id, rank, device_name,
  measured_s, predicted, predicted_mem, predicted_compute, ratio, ratio_to_scaled}],
  "seconds_per_predicted_unit", "critical_path": {predicted, measured_end_to_end_s, ratio,
  measured_dag_s, measured_path, overhead_s}}`; `measured_critical_path(measurement)`.
`calibrated_latency(measurement, split) -> {"unit": "s", "source": "measured", "partitions":
  [{id, compute_s, nodes}], "transfer": {edges, bytes_per_s, fit_bytes_per_s, fit_latency_s}}`;
  `node_latency_mapping(calibration, gm, weights=None) -> {Node: NodeLatency}` (for
  `PartitionerConfig.node_to_latency_mapping`; `CalibratedLatency` does this for a partition stage).
`prestart()`, `WorkerFailed`, `RunTimeout`, `Terminated`.

The measurement (JSON-able; seconds, bytes)
-------------------------------------------
backend, world_size; ranks: [{rank, role, device, device_name, partitions, pid}];
placement: [{id, rank, device, device_name, replicated_on}] (which device a replicated partition
ran on, among which); partition_dag: [[from, to]] over partition ids, "input", "output"; chain;
startup: {start_method, forkserver_s, processes_s, setup_s, load_s, rendezvous_s, total_s, port};
repeats, warmup; partitions: [{id, rank, device, device_name, compute_s (median per call after
warm-up), compute_min_s, compute_samples_s (every request's, in order)}]; edges: [{value, src_rank,
dst_rank, from, to, bytes, header_bytes, transfer_s (median half round trip of that value alone),
transfer_min_s (the fastest), bytes_per_s}]; end_to_end_s,
end_to_end_min_s, end_to_end_samples_s (one request, driver to driver); pipeline: null or
{schedule: "gpipe-forward", chain, microbatches, batch, split_inputs, pipelined_s,
sequential_microbatches_s, speedup, samples_per_s, stage_compute_s, ideal_compute_only_s,
matches_full_batch, max_abs_diff}. The pipeline streams micro-batches (split along dim 0)
through every rank without waiting for outputs: for a chain that is GPipe's forward schedule.
(torch.distributed.pipelining's ScheduleGPipe also runs forward-only on gloo and CPU, but its
stages exchange tensors only, one stage per rank with the result on the last one, while split
modules pass tuples, ints and values that skip stages; streaming here works on any DAG.)
A split whose partitions form a chain can also run on torch.distributed.pipelining itself:
`fxflow.distributed.pipeline_stages` cuts it into stage modules (values that skip a stage carried
through it) and `fxflow.distributed.pipelining.PipelinedModule` runs them with GPipe or 1F1B.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names, each from its module. They load on first use (PEP 562 `__getattr__`): a run that
# only reads execution facts (fxflow.distributed.facts, for the reports) does not pay for
# torch.distributed, the process cluster and the planner (~0.4 s per process).
_FROM = {
    "calibrated_latency": "calibration", "node_latency_mapping": "calibration",
    "RunTimeout": "cluster", "Terminated": "cluster", "WorkerFailed": "cluster", "prestart": "cluster",
    "compare_with_prediction": "compare", "measured_critical_path": "compare",
    "DistributedModule": "executor", "run_partitioned": "executor",
    "Plan": "plan", "Slot": "plan", "SlotAssignment": "plan", "build_plan": "plan", "placement_from_facts": "plan",
}
__all__ = sorted(_FROM)


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM))
