"""The fitted cost model (fxflow.partitioning.fitted_cost): the fit recovers known coefficients, the
file round-trips and a malformed one is refused with one message, and a partition stage that uses it
records which calibration it came from. Its accuracy on real runs is benchmarks/cost_model.py's."""

from __future__ import annotations

import json

import pytest
import torch
from torch.fx import symbolic_trace

from fxflow.distributed.cost_fit import ScaledBatchFailed, _crossing_terms, _profile_scaled, predict_placement, scale_batch
from fxflow.partitioning.fitted_cost import (
    FittedCost,
    NodeFeatures,
    PartitionTerms,
    TransferTerms,
    fit_coefficients,
    fit_line,
    profile,
    sha256_of,
    with_fallback,
)

TRUE = {"call": 2e-5, "flops": 3e-11, "bytes": 1e-10, "elements:relu": 4e-9, "elements:add": 1e-9}


def _synthetic(count: int = 40) -> list[NodeFeatures]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for i in range(count):
        r = torch.rand(3, generator=gen).tolist()
        if i % 3 == 0:
            values = {"call": 1.0, "flops": 1e6 + 1e8 * r[0], "bytes": 1e4 + 1e6 * r[1]}
        else:
            values = {"call": 1.0, "flops": 0.0, "bytes": 1e4 + 1e6 * r[1], f"elements:{'relu' if i % 3 == 1 else 'add'}": 1e3 + 1e5 * r[2]}
        rows.append(NodeFeatures(f"n{i}", "k", values))
    return rows


def _seconds(features, coefficients):
    return [sum(coefficients.get(k, 0.0) * v for k, v in f.values.items()) for f in features]


def test_the_fit_recovers_known_coefficients_from_synthetic_timings():
    features = _synthetic()
    fitted = fit_coefficients(features, _seconds(features, TRUE))
    assert set(fitted) == set(TRUE)
    for key, value in TRUE.items():
        assert fitted[key] == pytest.approx(value, rel=1e-3), key
    # with 5% multiplicative noise the coefficients that carry the time stay within 10%
    noise = torch.Generator().manual_seed(1)
    noisy = [s * (1 + 0.05 * (2 * torch.rand(1, generator=noise).item() - 1)) for s in _seconds(features, TRUE)]
    fitted = fit_coefficients(features, noisy)
    assert fitted["flops"] == pytest.approx(TRUE["flops"], rel=0.1)
    assert fitted["call"] == pytest.approx(TRUE["call"], rel=0.1)


def test_too_few_timings_for_the_coefficients_are_refused():
    with pytest.raises(ValueError, match="2 timed nodes cannot fit"):
        fit_coefficients(_synthetic()[:2], [1.0, 2.0])


def test_crossing_terms_come_from_the_probes_and_the_request():
    """Probes: 1 ms + bytes / 100 MB/s. Request: input -> 0 -> 1 -> output, three crossings, each
    partition 10 ms, end to end 20 ms + bytes + 3 x 2 ms: the per-crossing latency is the 2 ms the
    request paid, not the probes' 1 ms."""
    sizes = {"x": 100_000, "submod_0": 400_000, "submod_1": 200_000}
    hops = {"x": (["input"], [0]), "submod_0": ([0], [1]), "submod_1": ([1], ["output"])}
    edges = [{"value": v, "bytes": b, "from": hops[v][0], "to": hops[v][1], "transfer_s": 1e-3 + b / 1e8}
             for v, b in sizes.items()]
    measurement = {"partitions": [{"id": 0, "compute_s": 0.01}, {"id": 1, "compute_s": 0.01}], "edges": edges,
                   "partition_dag": [["input", 0], [0, 1], [1, "output"]],
                   "end_to_end_s": 0.02 + sum(sizes.values()) / 1e8 + 3 * 2e-3}
    terms = _crossing_terms(measurement, {0: 0.01, 1: 0.01})
    assert terms.bytes_per_s == pytest.approx(1e8, rel=1e-6)
    assert terms.latency_s == pytest.approx(2e-3, rel=1e-6)
    # with each request's partition times: the second request's partition 0 was slowed by 5 ms
    # of other work and its latency with it; that is compute, not the link
    link_s = sum(sizes.values()) / 1e8 + 3 * 2e-3
    measurement["partitions"][0]["compute_samples_s"] = [0.01, 0.015]
    measurement["partitions"][1]["compute_samples_s"] = [0.01, 0.01]
    measurement["end_to_end_samples_s"] = [0.02 + link_s + 1e-3, 0.025 + link_s]
    measurement["end_to_end_s"] = 0.025 + link_s  # the fastest request is the slowed one, by 0.5 ms
    fastest = _crossing_terms(measurement, {0: 0.01, 1: 0.01}, "min")
    assert fastest.latency_s == pytest.approx(2e-3, rel=1e-6)
    median = _crossing_terms(measurement, {0: 0.01, 1: 0.01}, "median")
    assert median.latency_s == pytest.approx(2e-3 + 0.5e-3 / 3, rel=1e-6)


def test_measurements_from_several_starts_are_read_as_one():
    """Two starts of the same plan: each partition's and request's samples joined in order (request r
    is still one request, so `_crossing_terms` can pair them), figures recomputed over the join, a
    crossing's probe the median of the medians and the fastest of all; a different plan is refused."""
    from fxflow.distributed.measurement import merged

    def start(compute: list[float], requests: list[float], probe: float) -> dict:
        return {"world_size": 3, "partitions": [{"id": 0, "rank": 1, "compute_s": sorted(compute)[len(compute) // 2],
                                                 "compute_min_s": min(compute), "compute_samples_s": compute}],
                "edges": [{"value": "x", "bytes": 1000, "transfer_s": probe, "transfer_min_s": probe / 2,
                           "bytes_per_s": 1000 / probe}],
                "repeats": len(requests), "end_to_end_s": sorted(requests)[len(requests) // 2],
                "end_to_end_min_s": min(requests), "end_to_end_samples_s": requests}

    slow, fast = start([3.0, 2.0, 2.5], [4.0, 3.0, 3.5], 0.4), start([1.0, 1.5, 1.2], [2.0, 2.5, 2.2], 0.2)
    both = merged([slow, fast])
    part = both["partitions"][0]
    assert part["compute_samples_s"] == [3.0, 2.0, 2.5, 1.0, 1.5, 1.2]
    assert part["compute_min_s"] == 1.0 and part["compute_s"] == pytest.approx(1.75)
    assert both["end_to_end_samples_s"] == [4.0, 3.0, 3.5, 2.0, 2.5, 2.2]
    assert both["end_to_end_min_s"] == 2.0 and both["repeats"] == 6 and both["starts"] == 2
    assert both["edges"][0]["transfer_s"] == pytest.approx(0.3) and both["edges"][0]["transfer_min_s"] == 0.1
    assert slow["partitions"][0]["compute_min_s"] == 2.0  # the inputs are left as they were
    other = start([1.0], [2.0], 0.2)
    other["partitions"][0]["id"] = 1
    with pytest.raises(ValueError, match="different plans"):
        merged([slow, other])


def test_a_partition_line_recovers_scale_and_overhead():
    modelled = [1e-4, 5e-4, 2e-3, 8e-3]
    assert fit_line(modelled, [1.1 * m + 7e-5 for m in modelled]) == pytest.approx((1.1, 7e-5), rel=1e-6)


def test_views_cost_their_call_and_a_linear_reads_its_parameters_once():
    """A node that makes no new tensor moves no data; a Linear's weights are
    parameter bytes, its input and output activation bytes; op kinds are lower-case so a module
    (GELU) and a function (gelu) share a coefficient."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act = torch.nn.Linear(6, 4), torch.nn.GELU()

        def forward(self, x):
            y = self.act(self.fc(x)).transpose(0, 1)
            return torch.nn.functional.gelu(y.reshape(-1)).view(y.size(0), -1)

    features = {f.name: f for f in profile(symbolic_trace(Net()), [torch.randn(3, 6)], repeats=1, cold=True)}
    assert features["transpose"].values == {"call": 1.0}
    assert features["view"].values == {"call": 1.0}
    assert features["size"].values == {"call": 1.0}
    assert features["reshape"].values["elements:reshape"] == 12  # of a transposed tensor: a copy
    assert features["fc"].values == {"call": 1.0, "flops": 2 * 3 * 4 * 6, "bytes": 4.0 * (3 * 6 + 3 * 4),
                                      "param_bytes": 4.0 * (6 * 4 + 4), "elements:linear": 3 * 4}
    assert features["act"].kind == features["gelu"].kind == "gelu"
    assert all(f.seconds and f.seconds > 0 for f in features.values())


def test_an_embedding_reads_the_rows_it_gathers_not_its_whole_table():
    """A lookup reads only the rows it gathers: its parameter bytes are its output's, however
    large the table (a whole table would make parameter bytes look nearly free to the fit)."""

    class Net(torch.nn.Module):
        def __init__(self, rows: int) -> None:
            super().__init__()
            self.table, self.fc = torch.nn.Embedding(rows, 8), torch.nn.Linear(8, 8)

        def forward(self, tokens):
            return self.fc(self.table(tokens))

    tokens = torch.tensor([[1, 2, 3]])
    for rows in (16, 4096):
        features = {f.name: f for f in profile(symbolic_trace(Net(rows)), [tokens])}
        assert features["table"].values["param_bytes"] == 4.0 * 3 * 8
        assert features["fc"].values["param_bytes"] == 4.0 * (8 * 8 + 8)  # a Linear reads all of its weights
    small = {f.name: f for f in profile(symbolic_trace(Net(2)), [torch.tensor([[0, 1, 0, 1, 0]])])}
    assert small["table"].values["param_bytes"] == 4.0 * 2 * 8  # never more than the table


def test_a_batch_is_scaled_along_its_first_dimension():
    x, tokens = torch.arange(12.0).reshape(4, 3), torch.arange(8).reshape(4, 2)
    up, down = scale_batch([x, tokens, 5], 2.5), scale_batch([x], 0.25)
    assert up[0].shape == (10, 3) and up[1].shape == (10, 2) and up[2] == 5
    assert torch.equal(up[0][4:8], x) and torch.equal(up[0][8:], x[:2])
    assert torch.equal(down[0], x[:1])


def test_a_model_that_cannot_run_a_scaled_batch_says_by_what():
    class FixedBatch(torch.nn.Module):
        def forward(self, x):
            return x.reshape(4, 3) * 2

    gm = symbolic_trace(FixedBatch())
    assert len(_profile_scaled(gm, [torch.randn(4, 3)], 1.0, repeats=1)) == 2
    with pytest.raises(ScaledBatchFailed, match=r"first dimension scaled by 2 \(RuntimeError: shape '\[4, 3\]'"):
        _profile_scaled(gm, [torch.randn(4, 3)], 2.0, repeats=1)


def _cost(**calibration) -> FittedCost:
    return FittedCost(calibration={"run": "outputs/cal", **calibration}, coefficients=with_fallback(TRUE),
                      partition=PartitionTerms(scale=1.5, overhead_s=2e-5),
                      transfer=TransferTerms(latency_s=1e-4, bytes_per_s=1e9))


def test_a_fitted_file_round_trips(tmp_path):
    path = tmp_path / "fitted_cost.json"
    _cost().save(path)
    again = FittedCost.load(path)
    assert again == _cost()
    # an op kind the calibration never ran costs the cheapest per-element coefficient
    unseen = NodeFeatures("n", "gelu", {"call": 1.0, "elements:gelu": 1000.0})
    assert again.coefficients["elements:*"] == TRUE["elements:add"]
    assert again.node_seconds(unseen) == pytest.approx(TRUE["call"] + 1000 * TRUE["elements:add"])
    nodes = [unseen, NodeFeatures("m", "relu", {"call": 1.0, "elements:relu": 10.0})]
    assert again.partition_seconds(nodes) == pytest.approx(1.5 * sum(map(again.node_seconds, nodes)) + 2e-5)


@pytest.mark.parametrize("content, message", [
    ("{not json", r"latency\.path=.*cannot read a fitted cost model"),
    ("[" * 5000 + "]" * 5000, r"latency\.path=.*cannot read a fitted cost model .*nested"),
    (json.dumps({"format": "something/else"}), r"latency\.path=.*format is 'something/else', expected 'fxflow\.fitted_cost/2'"),
    ("FIX", r"latency\.path=.*partition\.scale: Input should be greater than 0 \(value -1\.0\)"),
])
def test_a_malformed_fitted_file_is_refused_with_one_message(tmp_path, content, message):
    path = tmp_path / "fitted_cost.json"
    if content == "FIX":
        data = _cost().model_dump()
        data["partition"]["scale"] = -1.0
        content = json.dumps(data)
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        FittedCost.load(path)
    assert str(path) in str(caught.value)


def test_prediction_of_a_placement_adds_crossings_on_the_critical_path():
    from torch.fx.passes.split_module import split_module

    from fxflow.models.uneven import UnevenTowers

    gm = symbolic_trace(UnevenTowers(dim=8, widths=[4, 8, 16]))
    split = split_module(gm, gm, lambda n: 0 if n.name.startswith("towers_0") else
                         1 if n.name.startswith("towers_") else 2)
    args = [torch.randn(2, 8)]
    cost = _cost()
    one = predict_placement(cost, split, {0: (1, "cpu"), 1: (1, "cpu"), 2: (1, "cpu")}, args)
    two = predict_placement(cost, split, {0: (1, "cpu"), 1: (2, "cpu"), 2: (1, "cpu")}, args)
    features = profile(split, args)
    assert one["partitions"][1] == pytest.approx(cost.partition_seconds([f for f in features if f.partition == 1]))
    assert len(two["edges"]) == len(one["edges"]) + 3  # x to the second worker, its two towers back
    assert [e["bytes"] for e in two["edges"]] == [2 * 8 * 4] * len(two["edges"])  # every value is a [2, 8] float32
    assert two["critical_path_s"] > one["critical_path_s"] - one["partitions"][1]
    # the two towers' outputs cross together: one latency, both payloads
    back = [e for e in two["edges"] if e["from"] == [1] and e["to"] == [2]]
    assert len(back) == 2
    assert sum(e["transfer_s"] for e in back) == pytest.approx(1e-4 + sum(e["bytes"] for e in back) / 1e9)


def test_the_partition_stage_records_which_calibration_it_used(run_recipe, tmp_path):
    path = tmp_path / "fitted_cost.json"
    _cost(recipe="distributed_calibrate_cost").save(path)
    run = run_recipe("partition_latency", "latency@transforms.partition.latency_model=fitted",
                     f"transforms.partition.latency_model.path={path}", "transforms.partition.mode=cost_aware")
    metrics = run.summary["metrics"]
    assert metrics["partition.latency_source.model"] == "fitted"
    assert metrics["partition.latency_source.path"] == str(path)
    assert metrics["partition.latency_source.sha256"] == sha256_of(path)
    assert metrics["partition.latency_source.calibration.run"] == "outputs/cal"
    assert metrics["partition.partitions.0.latency"][2] > 0
    assert run.summary["status"] == "passed"


def test_a_partition_stage_given_a_malformed_fitted_file_errors_naming_it(run_recipe, tmp_path):
    path = tmp_path / "fitted_cost.json"
    path.write_text("{}")
    run = run_recipe("partition_latency", "latency@transforms.partition.latency_model=fitted",
                     f"transforms.partition.latency_model.path={path}")
    assert run.summary["status"] == "error"
    assert f"latency_model.path={path}" in json.dumps(run.summary)


def test_the_calibration_model_runs_every_op_kind_mini_gpt_computes():
    """A fitted model predicts an op kind the calibration never ran at the cheapest per-element
    cost; MiniGPT, a held-out model of benchmarks/cost_model.py, must find each of its element-wise
    kinds (softmax, masked_fill, embedding, layernorm...) fitted, so the calibration model runs
    them, at its own batch and at the recipe's scaled batches."""
    from fxflow.models.gpt import MiniGPT
    from fxflow.models.uneven import UnevenMix

    def kinds(model: torch.nn.Module, args: list[torch.Tensor]) -> set[str]:
        return {key for f in profile(symbolic_trace(model), args) for key in f.values if key.startswith("elements:")}

    mix = UnevenMix(vocab=64, context=8, dims=[32, 64, 16], heads=[4, 0])
    gpt = kinds(MiniGPT(vocab=64, context=8, dim=16, heads=2, layers=1), [torch.randint(0, 64, (2, 8))])
    for factor in (0.25, 1.0, 4.0):
        tokens = scale_batch([torch.randint(0, 64, (4, 8))], factor)
        assert gpt <= kinds(mix, tokens), gpt - kinds(mix, tokens)
    assert {"elements:softmax", "elements:masked_fill", "elements:embedding", "elements:layernorm"} <= gpt
    with pytest.raises(ValueError, match=r"heads needs one entry per Linear layer \(2\), not 1"):
        UnevenMix(dims=[32, 64, 16], heads=[4])


def test_each_node_keeps_its_fastest_time_over_the_passes(monkeypatch):
    """Other work only ever adds time: a node slowed in one pass keeps its time from another, and
    every batch scale is timed in every pass (here pass 0 slows node a, pass 1 slows node b)."""
    import fxflow.distributed.cost_fit as cost_fit

    calls: list[int] = []

    def fake_profile(split, args, repeats=0, cold=False):
        calls.append(args[0].shape[0])
        slow = len(calls) <= 2  # the first pass, both scales
        return [NodeFeatures("a", "relu", {"call": 1.0}, seconds=(5.0 if slow else 1.0) * args[0].shape[0]),
                NodeFeatures("b", "relu", {"call": 1.0}, seconds=(2.0 if slow else 7.0) * args[0].shape[0])]

    monkeypatch.setattr(cost_fit, "profile", fake_profile)
    one, four = cost_fit.fastest_of_passes(None, [torch.zeros(2, 3)], [1.0, 4.0], repeats=2, passes=2)
    assert calls == [2, 8, 2, 8]
    assert [(f.name, f.seconds) for f in one] == [("a", 2.0), ("b", 4.0)]
    assert [(f.name, f.seconds) for f in four] == [("a", 8.0), ("b", 16.0)]
