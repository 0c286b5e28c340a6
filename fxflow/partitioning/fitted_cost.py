"""A cost model fitted from one calibration run, that predicts models it never saw.

`CalibratedLatency` re-uses a partition's measured seconds for the same nodes, so it only
predicts the model it measured. This model predicts from what a node *does*: each compute node
is described by features read from one run of it (a call, its GEMM FLOPs, its output elements
per op kind (a GEMM's too: what an output costs beyond its FLOPs differs between GEMM kinds), the
activation bytes it reads and writes, the parameter bytes it reads (an embedding's: the rows it
gathers, not its whole table)), and its seconds are a non-negative linear combination of them,
fitted by non-negative least squares (scipy.optimize.nnls) to per-node timings. A node that makes
no new tensor (a view, transpose, getitem, size...) moves no data: it costs its call only.

The timings are taken the way a worker runs: with `cold=True` a node with parameters is timed
after the caches were flushed, its inputs read back in and a copy of it run (so its code is warm),
so its parameters come from memory (a worker's weights are evicted between requests by whatever
else ran) while its activations are warm (the previous node just wrote them); a node without
parameters is timed warm. A partition's seconds are `scale * sum(node seconds) + overhead_s`,
fitted to the partitions a distributed run measured, and a crossing costs
`latency_s + bytes / bytes_per_s`, fitted to the measured crossings and request.

    features = profile(gm, args)                          # per node: kind and feature values
    coefficients = fit_coefficients(features, seconds)    # seconds per unit of each feature
    cost.node_seconds(feature)                            # a prediction, any model

The fit is saved as JSON (`FittedCost.save`, written by the execute stage with `fit_cost: true`)
and fed to a partition stage with `FittedLatency` (conf/latency/fitted.yaml); the partition
facts' `latency_source` then names the file, its sha256 and the calibration run it came from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.optimize import nnls
from torch.fx import GraphModule, Interpreter, Node
from torch.fx.experimental.partitioner_utils import NodeLatency
from torch.utils._pytree import tree_leaves

from fxflow.bounded_load import load_json
from fxflow.inputs import InputSet
from fxflow.nodes import NON_COMPUTE_OPS, op_name
from fxflow.partitioning.latency import LatencyModel

FORMAT = "fxflow.fitted_cost/2"
CALL, FLOPS, BYTES, PARAM_BYTES = "call", "flops", "bytes", "param_bytes"
ELEMENTS = "elements:"  # + op kind; `elements:*` is the fallback for kinds the calibration never ran

_GEMM_FUNCTIONS = {"matmul": -1, "mm": -1, "bmm": -1, "linear": -1, "addmm": -1, "baddbmm": -1}


@dataclass
class NodeFeatures:
    """What one compute node did on one run: its op kind and feature values (see module doc)."""

    name: str
    kind: str
    values: dict[str, float]
    partition: int | None = None  # the `submod_<id>` it ran in, for a split module
    seconds: float | None = None  # median wall-clock seconds, when timed


def tensor_bytes(value: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tree_leaves(value) if isinstance(t, torch.Tensor))


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]


def _moves_no_data(result: Any, args: Any) -> bool:
    """True when the node made no new tensor: every output tensor shares storage with an input
    (a view, a getitem), or there is none (a size, a shape)."""
    inputs = {t.untyped_storage().data_ptr() for t in _tensors(args)}
    return all(t.untyped_storage().data_ptr() in inputs for t in _tensors(result))


def _cache_bytes() -> int:
    """The largest CPU cache this machine reports (sysfs), or 32 MiB where it reports none."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper()
        if text[:-1].isdigit() and text[-1] in "KM":
            sizes.append(int(text[:-1]) * (1024 if text[-1] == "K" else 1024 * 1024))
    return max(sizes, default=32 * 1024 * 1024)


class _Evictor:
    """Writes a buffer twice the size of the largest cache, which pushes everything else out."""

    def __init__(self) -> None:
        self.buffer = torch.zeros(2 * _cache_bytes() // 4)

    def __call__(self, warm: Any) -> None:
        self.buffer.add_(1.0)
        for t in _tensors(warm):  # read the inputs back in: they are warm on a worker
            t.clone()


def _numel(value: Any) -> int:
    return sum(t.numel() for t in tree_leaves(value) if isinstance(t, torch.Tensor))


def _gemm_flops(node: Node, module: torch.nn.Module | None, args: tuple, out: Any) -> float:
    """2 x output elements x reduction length, for the ops that are matrix products; 0 otherwise."""
    if module is not None:
        if isinstance(module, torch.nn.Linear):
            return 2.0 * _numel(out) * module.in_features
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            k = int(np.prod(module.kernel_size)) * module.in_channels // module.groups
            return 2.0 * _numel(out) * k
        return 0.0
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if node.target is operator.matmul or name in _GEMM_FUNCTIONS:
        lhs = args[1] if name in ("addmm", "baddbmm") else args[0]
        if isinstance(lhs, torch.Tensor) and lhs.dim() >= 1:
            return 2.0 * _numel(out) * lhs.shape[-1]
    return 0.0


def _param_bytes_read(module: torch.nn.Module, result: Any) -> int:
    """The parameter bytes a module's call reads: all of them, but for a lookup table (an
    embedding) only the rows it gathers, which are its output. Counting a whole table would
    make a large, barely read table look free per byte and shift its cost onto the GEMMs' FLOPs."""
    total = sum(p.numel() * p.element_size() for p in module.parameters())
    if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        return min(total, tensor_bytes(result))
    return total


class _Profiler(Interpreter):
    """Runs a module node by node, recording each compute node's features (and, with `repeats`,
    the fastest of that many calls: the one least disturbed by other work; with `evict`, each call
    after the caches were flushed). A `submod_<id>` child that is a GraphModule is profiled node by
    node too, its nodes tagged with the partition id."""

    def __init__(self, gm: GraphModule, repeats: int, partition: int | None, out: list[NodeFeatures],
                 evict: _Evictor | None = None, value_bytes: dict[str, int] | None = None):
        super().__init__(gm)
        self.repeats, self.partition, self.out, self.evict = repeats, partition, out, evict
        self.value_bytes = value_bytes
        self.modules = dict(gm.named_modules())

    def run_node(self, n: Node) -> Any:
        result = self._run_node(n)
        if self.value_bytes is not None:
            self.value_bytes[n.name] = tensor_bytes(result)
        return result

    def _run_node(self, n: Node) -> Any:
        if n.op in NON_COMPUTE_OPS:
            return super().run_node(n)
        module = self.modules.get(n.target) if n.op == "call_module" else None
        if isinstance(module, GraphModule) and str(n.target).startswith("submod_"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            pid = int(str(n.target).split("_", 1)[1])
            return _Profiler(module, self.repeats, pid, self.out, self.evict).run(*args, *kwargs.values())
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        samples = []
        result = None
        has_params = module is not None and next(module.parameters(), None) is not None
        decoy = copy.deepcopy(module) if self.evict is not None and self.repeats and has_params else None
        for _ in range(max(self.repeats, 1)):
            if decoy is not None:
                self.evict((args, kwargs))
                decoy(*args, **kwargs)  # its code and the output's memory warm, this node's parameters cold
            start = time.perf_counter()
            result = getattr(self, n.op)(n.target, args, kwargs)
            samples.append(time.perf_counter() - start)
        kind = op_name(n, self.modules).lower()
        values = {CALL: 1.0}
        if not _moves_no_data(result, (args, kwargs)):
            params = _param_bytes_read(module, result) if module is not None else 0
            values.update({FLOPS: _gemm_flops(n, module, args, result),
                           BYTES: float(tensor_bytes((args, kwargs)) + tensor_bytes(result)), PARAM_BYTES: float(params),
                           # a GEMM's too: what each output costs beyond its FLOPs (a short reduction,
                           # a small batched matmul of attention heads) differs between GEMM kinds
                           ELEMENTS + kind: float(_numel(result))})
            values = {k: v for k, v in values.items() if v}
        self.out.append(NodeFeatures(n.name, kind, values, self.partition,
                                     min(samples) if self.repeats else None))
        return result


def profile(gm: GraphModule, args: Sequence[Any], repeats: int = 0, threads: int | None = 1,
            cold: bool = False, value_bytes: dict[str, int] | None = None) -> list[NodeFeatures]:
    """Every compute node's features on one run of `gm(*args)`; with `repeats` > 0 also its fastest
    seconds over that many calls, with `threads` torch threads (as a worker with one thread runs),
    and with `cold` each call after the caches were flushed (see the module doc). `value_bytes`,
    when given, receives the byte size of every value of `gm`'s own graph (a split module's
    top-level values: what crosses between its partitions)."""
    out: list[NodeFeatures] = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or before)
        with torch.no_grad():
            _Profiler(gm, repeats, None, out, _Evictor() if cold and repeats else None, value_bytes).run(*args)
    finally:
        torch.set_num_threads(before)
    return out


def fit_coefficients(features: Sequence[NodeFeatures], seconds: Sequence[float]) -> dict[str, float]:
    """Non-negative seconds per unit of each feature, minimising the *relative* squared error
    (rows are divided by their seconds, so a 10 us node weighs as much as a 10 ms one)."""
    columns = sorted({key for f in features for key in f.values})
    if len(features) < len(columns):
        raise ValueError(f"{len(features)} timed nodes cannot fit {len(columns)} coefficients ({', '.join(columns)})")
    a = np.array([[f.values.get(c, 0.0) for c in columns] for f in features], dtype=float)
    b = np.asarray(seconds, dtype=float)
    weight = 1.0 / np.maximum(b, 1e-9)
    scale = np.maximum(np.abs(a).max(axis=0), 1e-30)  # columns of ~1 so nnls is well conditioned
    solution, _ = nnls(a * weight[:, None] / scale, b * weight)
    return {c: float(x / s) for c, x, s in zip(columns, solution, scale)}


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Non-negative (slope, intercept) of y = slope * x + intercept, by relative least squares; with
    one point, the slope through the origin."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) == 1:
        return (float(ys[0] / xs[0]) if xs[0] else 1.0), 0.0
    weight = 1.0 / np.maximum(ys, 1e-12)
    solution, _ = nnls(np.stack([xs, np.ones_like(xs)], axis=1) * weight[:, None], ys * weight)
    return float(solution[0]), float(solution[1])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartitionTerms(_Strict):
    """A partition's seconds on a worker = scale x the sum of its nodes' predictions + overhead_s."""

    scale: float = Field(gt=0)
    overhead_s: float = Field(0.0, ge=0)


class TransferTerms(_Strict):
    """A crossing's seconds = latency_s + bytes / bytes_per_s."""

    latency_s: float = Field(ge=0)
    bytes_per_s: float = Field(gt=0)


class FittedCost(_Strict):
    """The file a calibration run writes (format `fxflow.fitted_cost/2`)."""

    format: Literal["fxflow.fitted_cost/2"] = FORMAT
    calibration: dict[str, Any]  # where the fit came from: recipe, model, run folder, counts
    coefficients: dict[str, float]  # seconds per unit of each feature
    partition: PartitionTerms
    transfer: TransferTerms
    fit: dict[str, Any] = {}  # how well it fitted its own calibration (relative errors)

    def node_seconds(self, feature: NodeFeatures) -> float:
        """Predicted seconds of one node; an op kind the calibration never ran uses `elements:*`."""
        total = 0.0
        for key, value in feature.values.items():
            coefficient = self.coefficients.get(key)
            if coefficient is None and key.startswith(ELEMENTS):
                coefficient = self.coefficients.get(ELEMENTS + "*", 0.0)
            total += (coefficient or 0.0) * value
        return total

    def partition_seconds(self, features: Iterable[NodeFeatures]) -> float:
        """Predicted seconds of one partition run on a worker."""
        return self.partition.scale * sum(self.node_seconds(f) for f in features) + self.partition.overhead_s

    def transfer_seconds(self, nbytes: float) -> float:
        return self.transfer.latency_s + nbytes / self.transfer.bytes_per_s

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=1))

    @classmethod
    def load(cls, path: str | Path, key: str = "latency.path") -> "FittedCost":
        """Read and validate a fitted file; any problem is one ValueError naming `key` and the file."""
        file = Path(path)
        try:
            data = load_json(file)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{key}={path}: cannot read a fitted cost model ({exc}); give the fitted_cost.json "
                             "an execute stage with fit_cost: true wrote") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{key}={path}: format is {found!r}, expected {FORMAT!r} (the fitted_cost.json an "
                             "execute stage with fit_cost: true writes)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{key}={path}: {where}: {first['msg']} (value {first.get('input')!r}); "
                             "re-run the calibration recipe to write a fresh one") from None


def with_fallback(coefficients: Mapping[str, float]) -> dict[str, float]:
    """Coefficients plus `elements:*`, for kinds a later model has and the calibration had not: the
    cheapest per-element cost fitted, so such a node costs about its call and the bytes it moves
    (most ops are memory-bound; a middling kind's cost would make every cheap one expensive)."""
    per_element = [v for k, v in coefficients.items() if k.startswith(ELEMENTS)]
    return {**coefficients, ELEMENTS + "*": float(min(per_element)) if per_element else 0.0}


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FittedLatency(LatencyModel):
    """Node latencies predicted by a fitted cost model (conf/latency/fitted.yaml): each compute
    node's features are read from one run on the example inputs (one thread), its compute latency
    is the fitted seconds times the partition scale. Works on any model, not only the calibrated one.

        latency@transforms.partition.latency_model=fitted transforms.partition.latency_model.path=FILE
    """

    path: str

    def cost(self) -> FittedCost:
        return FittedCost.load(self.path, "latency_model.path")

    def mapping(self, gm: GraphModule, inputs: InputSet) -> dict[Node, NodeLatency]:
        cost = self.cost()
        seconds = {f.name: cost.partition.scale * cost.node_seconds(f) for f in profile(gm, inputs.args)}
        return {n: NodeLatency(0.0, seconds.get(n.name, 0.0)) for n in gm.graph.nodes if n.op not in NON_COMPUTE_OPS}

    def source(self) -> dict[str, Any]:
        cost = self.cost()
        return {"model": "fitted", "path": str(self.path), "sha256": sha256_of(self.path),
                "calibration": cost.calibration, "transfer": cost.transfer.model_dump()}
