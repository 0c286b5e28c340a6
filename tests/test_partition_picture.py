"""What people see of a partitioned run: the terminal at 80 columns and the partition picture."""

from __future__ import annotations

import io

import torch
from matplotlib.colors import to_rgb
from rich.console import Console
from torch.fx import symbolic_trace
from torch.fx.passes import graph_manipulation

from fxflow.checks.result import Check
from fxflow.models.partition_examples import DiamondLinear
from fxflow.reports.console import describe
from fxflow.reports.partition import terminal_table
from fxflow.reports.partition_picture import CROSSING, PALETTE, _graph, draw_partitions, fit_label, partition_flows


def diamond_with_facts(devices_of_partition: list[list[str]]):
    """DiamondLinear traced and sized; its compute nodes split in order over len(devices_of_partition) partitions."""
    gm = symbolic_trace(DiamondLinear())
    graph_manipulation.get_size_of_all_nodes(gm, [torch.rand(4)])
    compute = [n.name for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    count = len(devices_of_partition)
    chunks = [compute[i::count] for i in range(count)]
    partitions = [{"id": i, "compute_nodes": chunk, "devices": devs, "logical_device_ids": [0] * len(devs),
                   "used_mem_bytes": 48, "latency": [1.0, 2.0, 3.0]} for i, (chunk, devs) in enumerate(zip(chunks, devices_of_partition))]
    facts = {"partitions": partitions, "num_partitions": count, "mode": "size_based", "idle_devices": [],
             "graph_node_count": 9, "devices": {"dev_0": {"mem_bytes": 200}, "dev_1": {"mem_bytes": 200}}}
    return gm, facts


def test_an_edge_crosses_devices_only_when_the_partitions_share_none():
    gm, facts = diamond_with_facts([["dev_0"], ["dev_0", "dev_1"], ["dev_1"]])
    graph = _graph(gm, facts)
    flows = partition_flows(graph)
    assert flows and all(size > 0 for size in flows.values())
    from fxflow.reports.partition_picture import _crosses

    crosses = _crosses(facts)
    assert not crosses(0, 1) and not crosses(1, 2) and crosses(0, 2) and not crosses(0, 0)


def test_no_partition_colour_looks_like_the_crossing_edge():
    red = to_rgb(CROSSING)
    for colour in PALETTE:
        r, g, b = to_rgb(colour)
        assert abs(r - red[0]) + abs(g - red[1]) + abs(b - red[2]) > 0.35, colour
        assert not (r > 0.75 and g < 0.45 and b < 0.45), colour  # nothing red


def test_picture_draws_nodes_up_to_the_limit_and_partitions_above_it():
    gm, facts = diamond_with_facts([["dev_0"], ["dev_1"]])
    for limit in (300, 3):
        png = draw_partitions(gm, facts, node_limit=limit)
        assert png[:4] == b"\x89PNG"


def test_labels_keep_names_whole_or_split_them_at_underscores():
    assert fit_label("linear", 10) == "linear"
    assert fit_label("embedding_layers_3", 10, lines=2) == "embedding_\nlayers_3"
    short = fit_label("a_very_long_node_name_indeed", 9)
    assert len(short) == 9 and short.startswith("a_ve") and short.endswith("deed")


def test_partition_table_fits_80_columns_without_breaking_names():
    names = [f"embedding_layers_{i}" for i in range(12)]
    facts = {"partitions": [{"id": 0, "compute_nodes": names[:6], "devices": ["dev_0", "dev_1"],
                             "logical_device_ids": [0, 1], "used_mem_bytes": 32_000_016},
                            {"id": 1, "compute_nodes": names[6:], "devices": ["dev_1"], "logical_device_ids": [1],
                             "used_mem_bytes": 1312}],
             "devices": {"dev_0": {"mem_bytes": 33_000_000}, "dev_1": {"mem_bytes": 33_000_000}}}
    out = io.StringIO()
    Console(file=out, width=80).print(terminal_table("partition", facts))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert all(name in text for name in names[:6])  # each shown name whole on one line
    assert "latency" not in text  # no latency model, no latency column
    assert "32.0 MB / 33.0 MB" in text and "1312 B" in text
    facts["partitions"][0]["latency"] = [16.0, 32.0, 32.0]
    out = io.StringIO()
    Console(file=out, width=80).print(terminal_table("partition", facts))
    assert "16 / 32 / 32" in out.getvalue()


def test_checks_read_as_words():
    pinned = Check("expect.partition.critical_path_latency", "expectation", False, expected={"approx": 208.0}, actual=200.0)
    assert describe(pinned) == "partition.critical_path_latency is 200.0; the recipe pins about 208.0"
    same = Check("expect.partition.num_partitions", "expectation", True, expected=2, actual=2)
    assert describe(same) == "partition.num_partitions is 2, as the recipe pins"
    equal = Check("equivalence.partition", "equivalence", True, detail="the output matches", stage="partition",
                  reference="eager model", extra={"input_sets": "3/3", "max_abs_diff": 0.0})
    assert describe(equal).startswith("stage partition computes what the eager model computes: the output matches on 3/3")
