"""Time of the partition picture by graph size: every node drawn up to the node limit (300 by
default), partitions as boxes above it. The graph is a residual chain traced with torch.fx, sized
with torch's shape propagation, and split into contiguous partitions spread over four devices.

    python benchmarks/picture.py                       # 100, 300, 1,000, 10,000 nodes
    python benchmarks/picture.py --nodes 10000 --out /tmp/pictures   # also keep the PNGs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch.fx import symbolic_trace
from torch.fx.passes import graph_manipulation

from fxflow.reports.partition_picture import draw_partitions


class ResidualChain(torch.nn.Module):
    """`steps` residual blocks of relu and add on one vector: about 2 nodes per step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            x = torch.relu(x) + x
        return x


def chain_with_facts(nodes: int, per_partition: int = 400, devices: int = 4) -> tuple[Any, dict[str, Any]]:
    """A sized graph of about `nodes` nodes and partition facts shaped like the partition transform's."""
    gm = symbolic_trace(ResidualChain(max(1, (nodes - 2) // 2)))
    graph_manipulation.get_size_of_all_nodes(gm, [torch.rand(16)])
    compute = [n for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    per_partition = min(per_partition, max(1, len(compute) // 8))
    chunks = [compute[i:i + per_partition] for i in range(0, len(compute), per_partition)]
    names = [f"dev_{i}" for i in range(devices)]
    partitions = [{"id": i, "compute_nodes": [n.name for n in chunk], "devices": [names[i % devices]],
                   "logical_device_ids": [i % devices], "used_mem_bytes": sum(n.size_bytes.total_size for n in chunk)}
                  for i, chunk in enumerate(chunks)]
    facts = {"partitions": partitions, "num_partitions": len(partitions), "mode": "size_based", "idle_devices": [],
             "graph_node_count": len(gm.graph.nodes),
             "devices": {name: {"mem_bytes": 10**9, "logical_id": i} for i, name in enumerate(names)}}
    return gm, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="*", default=[100, 300, 1000, 10000])
    parser.add_argument("--out", type=Path, help="folder to keep the pictures in")
    args = parser.parse_args()
    draw_partitions(*chain_with_facts(50))  # warm matplotlib's fonts and caches
    for count in args.nodes:
        gm, facts = chain_with_facts(count)
        start = time.perf_counter()
        png = draw_partitions(gm, facts)
        seconds = time.perf_counter() - start
        kind = "nodes" if len(gm.graph.nodes) <= 300 else "partitions as boxes"
        print(f"{len(gm.graph.nodes):>6} nodes, {facts['num_partitions']:>3} partitions: {seconds:.3f} s ({kind})")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"partition_graph_{len(gm.graph.nodes)}.png").write_bytes(png)


if __name__ == "__main__":
    main()
