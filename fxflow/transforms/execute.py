"""Run the partitioned module the way it would be deployed: one worker process per device.

Usage in a recipe, after a partition stage::

    defaults:
      - /transform@transforms.size_nodes: size_nodes
      - /transform@transforms.partition: partition
      - /latency@transforms.partition.latency_model: measured   # predictions in seconds
      - /transform@transforms.execute: execute
    transforms:
      execute: {repeats: 10, microbatches: 4}

The stage reads the placement from the partition facts the split module carries
(`partition_facts_of(split)`, given by the partition stage whatever its backend), starts
one worker per device holding a partition plus a driver (fxflow.distributed), and returns a
callable that sends every call through those processes, so the run's equivalence check proves
the distributed run against the eager model. The processes live until the pipeline closes the
stage module at the end of the run (`close()`), or end at once when this stage fails.

Each device's torch device is its `torch_device` in the device list (cpu where unset). The
process group is `process_group` (`backend` until this release); `auto` picks nccl when a device is CUDA (CPU values then
still go over gloo) and gloo otherwise, so running on GPUs is a change of the device list only
(`torch_device: cuda:N`, one GPU per device that holds a partition).

Facts (seconds, bytes): `process_group`, `world_size`, `workers`, `ranks`, `placement` (a replicated
partition's chosen device and its candidates), `partition_dag`, `chain`, `startup`; with
`measure`: `partitions.<i>.{measured_s, predicted, ratio, ...}` (compute per call, median
after warm-up, beside the latency model's prediction), `measured_partitions`, `edges` (bytes
and transfer time per crossing value), `end_to_end_s`, `critical_path` (predicted vs measured),
`pipeline` (micro-batched throughput, with `microbatches` > 1) and `calibration`: the measured
latency model written to `calibrated_latency.json` in the stage's folder, which
`fxflow.partitioning.latency.CalibratedLatency` feeds back into the partitioner. With `fit_cost`,
`fitted_cost` (fit errors, partition scale and overhead, link speed): a cost model for other
models, written to `fitted_cost.json` (fxflow.distributed.cost_fit; its nodes also timed at
`fit_batch_scales` times the batch; with `fit_starts` > 1 the fit reads that many measurements,
each from freshly started workers; conf/latency/fitted.yaml reads it). When a worker
fails, `failure` says which rank, partition and step, and why.

engine: pipelining runs a plan that is a chain of stages with torch.distributed.pipelining instead
(fxflow.distributed.pipelining): fxflow's cut, one `PipelineStage` per device (consecutive
partitions on one device are one stage), torch's `schedule` (gpipe | 1f1b) over `microbatches`.
The ranks start from fxflow's forkserver (`launch: fxflow`), or this process is one rank of a
`torchrun` job (`launch: torchrun`, one process per stage over all hosts). A placement that is
not a chain is refused with the reason: fxflow's own executor (engine: fxflow) runs any DAG.
With `training: true` the step is a training step (mean squared error against a seeded target,
backward through the schedule). Facts: `engine`, `launch`, `schedule`, `microbatches`, `stages`
(partitions, device, values in and out per stage), the ranks and placement as above; with
`measure`: `step` (forward | train), `step_s` (the slowest rank's seconds per schedule step,
median after warm-up), `step_min_s`, `rank_step_s`, `samples_per_s`; with `training`:
`training` (one training step's losses and
every stage's gradients against the split module run eagerly here: `matches`, the largest
differences).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Literal

import torch
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from pydantic_core import PydanticCustomError
from torch.fx import GraphModule

from fxflow.distributed.facts import ExecutionFacts
from fxflow.partitioning.facts import partition_facts_of
from fxflow.stages import DISTRIBUTED, PLACED
from fxflow.transforms.base import StageContext, Transform

if TYPE_CHECKING:
    from fxflow.distributed import DistributedModule
    from fxflow.distributed.pipelining import PipelinedModule

# The process machinery (torch.distributed, the cluster, the planner) is imported where a stage
# runs: every run imports this module (the transform listing), few run it.

CALIBRATION_FILE = "calibrated_latency.json"
FITTED_COST_FILE = "fitted_cost.json"


class ExecutePartitions(Transform):
    """One worker process per device holding a partition, activations sent point to point over
    torch.distributed; measured against the partition stage's latency prediction."""

    takes: ClassVar = PLACED
    gives: ClassVar = DISTRIBUTED  # a handle on processes, not a graph
    facts_model: ClassVar = ExecutionFacts
    uses_devices: ClassVar[bool] = True

    process_group: Literal["auto", "gloo", "nccl"] = "auto"
    backend: Literal["auto", "gloo", "nccl"] | None = None  # the old name of process_group, read for one release
    timeout_s: PositiveFloat = 60.0
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    threads_per_worker: PositiveInt = 1
    fit_cost: bool = False  # also fit a cost model that predicts other models (fitted_cost.json)
    fit_statistic: Literal["min", "median"] = "min"  # fit the fastest request (undisturbed) or the median
    fit_batch_scales: list[PositiveFloat] = [0.25, 4.0]  # the nodes also timed with dim 0 of the inputs scaled by each
    fit_starts: PositiveInt = 1  # the fit reads this many measurements, each from freshly started workers
    measure: bool = True
    repeats: PositiveInt = 10
    warmup: NonNegativeInt = 2
    microbatches: NonNegativeInt = 0
    engine: Literal["fxflow", "pipelining"] = "fxflow"
    schedule: Literal["gpipe", "1f1b"] = "gpipe"
    training: bool = False
    launch: Literal["fxflow", "torchrun"] = "fxflow"

    @model_validator(mode="after")
    def _pipelining_keys(self) -> "ExecutePartitions":
        """schedule, training and launch choose how torch.distributed.pipelining runs; fxflow's executor has none."""
        if self.engine == "fxflow":
            given = {k: getattr(self, k) for k, d in (("schedule", "gpipe"), ("training", False), ("launch", "fxflow"))
                     if getattr(self, k) != d}
            if given:
                key, value = next(iter(given.items()))
                raise PydanticCustomError(
                    "engine", "{key}={value} applies to engine=pipelining only; set engine=pipelining (a chain of "
                    "stages run by torch.distributed.pipelining) or leave {key} out", {"key": key, "value": value})
        return self

    @model_validator(mode="after")
    def _old_backend_key(self) -> "ExecutePartitions":
        """`backend` meant the process group here and torch/fxflow in the partition stage; it is
        `process_group` now, and the old key still works (with a warning) for one release."""
        if self.backend is None:
            return self
        if self.process_group not in ("auto", self.backend):
            raise PydanticCustomError(
                "process_group", "backend={old} and process_group={new} disagree; backend is the old name of "
                "process_group: write process_group only", {"old": self.backend, "new": self.process_group})
        message = (f"the execute stage's `backend` is now `process_group`: write process_group={self.backend} "
                   "(backend is read for one more release)")
        # the line to blame is the config's, not Python's: any stacklevel here lands in pydantic
        warnings.warn_explicit(message, FutureWarning, filename="<config: the execute stage's backend key>", lineno=0)
        logging.getLogger("fxflow").warning(message)
        self.process_group, self.backend = self.backend, None
        return self

    def apply(self, gm: GraphModule, ctx: StageContext) -> DistributedModule | PipelinedModule:
        from fxflow.distributed import calibrated_latency, placement_from_facts
        from fxflow.distributed.measurement import merged

        carried = partition_facts_of(gm)
        if carried is None:
            raise ValueError(f"transforms.{ctx.name} runs a partitioned module, but the module it received carries no "
                             "partition facts: put a partition stage right before it")
        partition_facts = carried.model_dump(exclude_unset=True)
        torch_devices = {d.name: d.torch_device or "cpu" for d in ctx.devices}
        placement = placement_from_facts(partition_facts["partitions"], torch_devices)
        cuda = any(torch.device(slot.device).type == "cuda" for slot in placement.slots.values())
        group = self.process_group if self.process_group != "auto" else ("nccl" if cuda else "gloo")
        if self.engine == "pipelining":
            return self._pipelined(gm, ctx, placement, group)
        module = self._workers(gm, placement, group)
        with _closed_on_failure(module, ctx, where=True):
            module.start()
            if not self.measure:
                ctx.facts.update(_where(module.describe()))
                return module
            measurement = module.measure(dict(ctx.inputs), repeats=self.repeats, warmup=self.warmup,
                                         probe_repeats=self.repeats, microbatches=self.microbatches)
        ctx.facts.update(_where(measurement))
        with _closed_on_failure(module, ctx):  # a failed calibration or fit ends the workers too
            ctx.facts.update(_measured(measurement, partition_facts))
            calibration = calibrated_latency(measurement, gm)
            ctx.artifacts.mkdir(parents=True, exist_ok=True)
            (ctx.artifacts / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1))
            ctx.facts["calibration"] = {"file": CALIBRATION_FILE, "partitions": len(calibration["partitions"]),
                                        "bytes_per_s": calibration["transfer"]["bytes_per_s"]}
            if self.fit_cost:
                starts = [measurement, *(self._fresh_measurement(gm, placement, group, ctx)
                                         for _ in range(self.fit_starts - 1))]
                ctx.facts["fitted_cost"] = _fit_cost(gm, merged(starts), ctx, self.fit_statistic, self.fit_batch_scales)
        return module

    def _workers(self, gm: GraphModule, placement: Any, group: str) -> DistributedModule:
        """fxflow's executor for this plan, with this stage's settings (started by the caller)."""
        from fxflow.distributed import DistributedModule

        return DistributedModule(gm, placement, group, timeout_s=self.timeout_s, start_method=self.start_method,
                                 threads_per_worker=self.threads_per_worker)

    def _fresh_measurement(self, gm: GraphModule, placement: Any, group: str, ctx: StageContext) -> dict[str, Any]:
        """The plan measured again on workers started for it and ended after (for `fit_starts`)."""
        module = self._workers(gm, placement, group)
        with _closed_on_failure(module, ctx):
            module.start()
            measurement = module.measure(dict(ctx.inputs), repeats=self.repeats, warmup=self.warmup,
                                         probe_repeats=self.repeats)
        module.close()
        return measurement

    def _pipelined(self, gm: GraphModule, ctx: StageContext, placement: Any, group: str) -> PipelinedModule:
        """The plan as torch.distributed.pipelining stages, run by its schedule; measured, and with
        `training` one training step proven against the split module run eagerly."""
        from fxflow.distributed.pipeline_stages import NotAPipeline, pipeline_stages
        from fxflow.distributed.pipelining import TORCHRUN_ENV, PipelinedModule

        try:
            cut = pipeline_stages(gm, placement, dict(ctx.inputs))
        except NotAPipeline as exc:
            raise ValueError(f"transforms.{ctx.name}.engine=pipelining runs a plan that is a chain of stages, and this "
                             f"one is not: {exc}. Use engine=fxflow (fxflow's executor runs any placement)") from None
        unset = [k for k in TORCHRUN_ENV if k not in os.environ] if self.launch == "torchrun" else []
        if unset:
            raise ValueError(f"transforms.{ctx.name}.launch=torchrun: this process is not a torchrun rank ({unset} unset); "
                             "run the command under torchrun (torchrun --nnodes=N --node-rank=R --nproc-per-node=P "
                             "--master-addr=HOST --master-port=PORT -m fxflow ...), or use launch=fxflow")
        count = max(self.microbatches, 1)
        if self.schedule == "1f1b" and count < cut.num_stages:
            raise ValueError(f"transforms.{ctx.name}.microbatches={self.microbatches}: schedule 1f1b needs at least as "
                             f"many micro-batches as stages ({cut.num_stages})")
        module = PipelinedModule(cut.modules, cut.input_names, schedule=self.schedule, microbatches=count,
                                 devices=cut.devices, device_names=cut.device_names, partitions=cut.partitions,
                                 backend=group, launch=self.launch, timeout_s=self.timeout_s,
                                 start_method=self.start_method, threads_per_worker=self.threads_per_worker)
        with _closed_on_failure(module, ctx):
            startup = module.start()
            described = module.describe()
            ctx.facts.update({"engine": "pipelining", "process_group": group, "workers": cut.num_stages,
                              "placement": placement.to_json(), "partition_dag": cut.partition_dag,
                              "chain": True, "startup": startup, "stages": cut.describe(), **described})
            if self.training:
                proof = ctx.facts["training"] = module.train_proof(dict(ctx.inputs), gm)
                if not proof["matches"]:
                    raise ValueError(f"transforms.{ctx.name}.training: the pipeline's training step differs from the "
                                     "split module's run eagerly (largest loss difference "
                                     f"{proof['max_abs_loss_diff']:.3g}, gradient {proof['max_abs_grad_diff']:.3g}, "
                                     f"unmatched {proof['unmatched_parameters']})")
            if self.measure:
                ctx.facts.update(repeats=self.repeats, warmup=self.warmup,
                                 **module.measure(dict(ctx.inputs), repeats=self.repeats, warmup=self.warmup,
                                                  step="train" if self.training else "forward"))
        return module


@contextmanager
def _closed_on_failure(module: DistributedModule | PipelinedModule, ctx: StageContext,
                       where: bool = False) -> Iterator[None]:
    """Workers never outlive a failed stage; a worker's failure goes into the facts (with where each
    partition ran, when `where`), so the record says which rank failed and how."""
    from fxflow.distributed import RunTimeout, WorkerFailed

    try:
        yield
    except (WorkerFailed, RunTimeout) as exc:
        if where:
            ctx.facts.update(_where(module.describe()))
        ctx.facts["failure"] = exc.record
        module.close()
        raise
    except BaseException:
        module.close()
        raise


def _fit_cost(split: GraphModule, measurement: dict[str, Any], ctx: StageContext,
              fit_statistic: str, batch_scales: list[float]) -> dict[str, Any]:
    """Fit fxflow.partitioning.fitted_cost's model to this run and write it beside the calibration."""
    from fxflow.distributed.cost_fit import ScaledBatchFailed, fit_cost

    source = {"run": str(ctx.artifacts.parent.resolve()), "stage": ctx.name, "starts": measurement.get("starts", 1),
              "compute_nodes": sum(len(p["compute_nodes"]) for p in partition_facts_of(split).model_dump()["partitions"])}
    try:
        cost = fit_cost(split, measurement, ctx.inputs.args, calibration=source, statistic=fit_statistic,
                        batch_scales=batch_scales)
    except ScaledBatchFailed as exc:
        raise ValueError(f"transforms.{ctx.name}.fit_batch_scales={batch_scales}: {exc}; give scales the model runs "
                         "with, or [] to time the nodes at the run's batch only") from None
    cost.save(ctx.artifacts / FITTED_COST_FILE)
    return {"file": FITTED_COST_FILE, "starts": measurement.get("starts", 1), **cost.fit,
            "partition_scale": cost.partition.scale,
            "partition_overhead_s": cost.partition.overhead_s, "transfer_bytes_per_s": cost.transfer.bytes_per_s}


def _where(record: dict[str, Any]) -> dict[str, Any]:
    """Where everything ran and how long starting took."""
    keys = ("world_size", "ranks", "placement", "partition_dag", "chain", "startup")
    return {"process_group": record["backend"], "workers": record["world_size"] - 1, **{k: record[k] for k in keys}}


def _measured(measurement: dict[str, Any], partition_facts: dict[str, Any]) -> dict[str, Any]:
    """Measured figures beside the prediction: per partition, per crossing, end to end."""
    from fxflow.distributed import compare_with_prediction

    comparison = compare_with_prediction(measurement, partition_facts)
    mins = {p["id"]: p["compute_min_s"] for p in measurement["partitions"]}
    rows = [{**row, "measured_min_s": mins[row["id"]]} for row in comparison["partitions"]]
    return {
        "repeats": measurement["repeats"],
        "warmup": measurement["warmup"],
        "measured_partitions": len(rows),
        "partitions": rows,
        "edges": measurement["edges"],
        "end_to_end_s": measurement["end_to_end_s"],
        "end_to_end_min_s": measurement["end_to_end_min_s"],
        "critical_path": comparison["critical_path"],
        "seconds_per_predicted_unit": comparison["seconds_per_predicted_unit"],
        "pipeline": measurement["pipeline"],
    }
