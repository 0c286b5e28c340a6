"""The execute stage's facts as a typed model: where every partition ran, how starting went, and,
when measured, the figures beside the latency model's prediction (seconds, bytes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ExecutionFacts(BaseModel):
    """`execute.*` in the record (see fxflow.transforms.execute for every key)."""

    model_config = ConfigDict(extra="allow")

    process_group: str  # the torch.distributed backend used: gloo or nccl
    world_size: int
    workers: int
    ranks: list[dict[str, Any]]
    placement: list[dict[str, Any]]
    partition_dag: Any = None
    chain: Any = None
    startup: dict[str, Any] | None = None
    # with `measure`:
    repeats: int | None = None
    warmup: int | None = None
    measured_partitions: int | None = None
    partitions: list[dict[str, Any]] | None = None
    edges: list[dict[str, Any]] | None = None
    end_to_end_s: float | None = None
    end_to_end_min_s: float | None = None
    critical_path: dict[str, Any] | None = None
    seconds_per_predicted_unit: float | None = None
    pipeline: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    # engine pipelining (fxflow.distributed.pipelining):
    engine: str = "fxflow"
    schedule: str | None = None
    stages: list[dict[str, Any]] | None = None
    step_s: float | None = None
    training: dict[str, Any] | None = None
