"""Start-up overhead of fxflow: wall time of `python -m fxflow` on a trivial recipe divided by the wall
time of a bare Python script doing the same torch work (trace, size, partition, compare), both run as
fresh processes in this same benchmark, alternated, median of N. Also the commands that only read
configs (`fxflow ls`, `--cfg job`), which import no torch, against `import torch` alone.

    python benchmarks/startup.py            # N=5
    python benchmarks/startup.py --runs 9
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
import torch
from torch.fx import symbolic_trace
from torch.fx.passes import graph_manipulation
from torch.fx.experimental.accelerator_partitioner import Partitioner
from torch.fx.experimental.partitioner_utils import Device, PartitionerConfig

class Add(torch.nn.Module):
    def forward(self, a, b):
        return a + b

m = Add()
gm = symbolic_trace(m)
a, b = torch.rand(1), torch.rand(1)
graph_manipulation.get_size_of_all_nodes(gm, [a, b])
devices = [Device("dev_0", 125, 0), Device("dev_1", 150, 1), Device("dev_2", 125, 2)]
ret = Partitioner().partition_graph(gm, m, PartitionerConfig(devices))
for _ in range(3):
    torch.testing.assert_close(ret.module_with_submodules(a, b), m(a, b))
assert ret.dag.nodes[0].logical_device_ids == [1]
"""
RECIPE = ["recipe=find_single_partition", "report.pictures=false"]


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bare.py"
        script.write_text(BARE)
        import_only, bare, fx, listing, cfg = [], [], [], [], []
        for i in range(args.runs):
            import_only.append(wall([sys.executable, "-c", "import torch"]))
            bare.append(wall([sys.executable, str(script)]))
            fx.append(wall([sys.executable, "-m", "fxflow", *RECIPE, f"hydra.run.dir={tmp}/run{i}"]))
            listing.append(wall([sys.executable, "-m", "fxflow", "ls"]))
            cfg.append(wall([sys.executable, "-m", "fxflow", *RECIPE, "--cfg", "job"]))
    med = {name: statistics.median(v) for name, v in (("import torch", import_only), ("bare script", bare), ("fxflow", fx),
                                                      ("fxflow ls", listing), ("--cfg job", cfg))}
    for name, value in med.items():
        print(f"{name:>14}: {value:.3f} s (median of {args.runs})")
    print(f"fxflow / bare script = {med['fxflow'] / med['bare script']:.2f}x  "
          f"(overhead {med['fxflow'] - med['bare script']:+.3f} s: Hydra, pydantic, rich, record files)")


if __name__ == "__main__":
    main()
