"""Unit tests of the run record: atomic writes and stage graphs (fxflow.record)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from fxflow.record.graphs import node_table, write_stage_graph
from fxflow.record.writer import MANIFEST, RunRecord
from fxflow.transforms.sizing import node_sizes


def all_files(root: Path) -> list[str]:
    """Every file under root (dotfiles included) but the record's manifest, relative, sorted."""
    return sorted(str(Path(d, f).relative_to(root)) for d, _, files in os.walk(root) for f in files
                  if f != MANIFEST)


def leftovers(root: Path) -> list[str]:
    return [f for f in all_files(root) if f.endswith(".tmp")]


# --------------------------------------------------------------------------- writer


def test_run_record_creates_its_directory(tmp_path):
    run_dir = tmp_path / "a" / "b"
    record = RunRecord(str(run_dir))
    assert run_dir.is_dir()
    assert record.run_dir == run_dir
    assert record.path("x/y.txt") == run_dir / "x" / "y.txt"


def test_write_text_and_bytes(tmp_path):
    record = RunRecord(tmp_path)
    path = record.write_text("notes/readme.txt", "héllo\nworld\n")
    assert path == tmp_path / "notes" / "readme.txt"
    assert path.read_text(encoding="utf-8") == "héllo\nworld\n"
    record.write_bytes("blob.bin", b"\x00\x01\xff")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01\xff"
    assert all_files(tmp_path) == ["blob.bin", "notes/readme.txt"]


def test_overwrite_replaces_content_and_leaves_no_tmp(tmp_path):
    record = RunRecord(tmp_path)
    record.write_text("f.txt", "a much longer first version")
    record.write_text("f.txt", "short")
    assert (tmp_path / "f.txt").read_text() == "short"
    assert leftovers(tmp_path) == []
    assert all_files(tmp_path) == ["f.txt"]


def test_failed_write_keeps_the_old_file_and_removes_the_tmp(tmp_path, monkeypatch):
    record = RunRecord(tmp_path)
    record.write_text("summary.json", "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        record.write_text("summary.json", "new")
    monkeypatch.undo()
    assert (tmp_path / "summary.json").read_text() == "old"
    assert leftovers(tmp_path) == []
    assert all_files(tmp_path) == ["summary.json"]


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    record = RunRecord(tmp_path)
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        record.write_bytes("out/x.bin", b"data")
    monkeypatch.undo()
    assert not (tmp_path / "out" / "x.bin").exists()
    assert leftovers(tmp_path) == []


def test_write_json_round_trips_plain_values(tmp_path):
    record = RunRecord(tmp_path)
    value = {"b": [1, 2.5, None, True], "a": {"nested": "x"}}
    path = record.write_json("summary.json", value)
    text = path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == value
    assert list(json.loads(text)) == ["b", "a"]  # key order kept
    assert leftovers(tmp_path) == []


def test_write_json_handles_tensors_and_other_objects(tmp_path):
    record = RunRecord(tmp_path)
    value = {
        "t": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "i": torch.tensor([1, 2, 3]),
        "s": torch.tensor(5),
        "dtype": torch.float32,
        "path": Path("/x/y"),
    }
    loaded = json.loads(record.write_json("facts.json", value).read_text())
    assert loaded["t"] == [[1.0, 2.0], [3.0, 4.0]]
    assert loaded["i"] == [1, 2, 3]
    assert loaded["s"] == 5
    assert loaded["dtype"] == "torch.float32"
    assert loaded["path"] == "/x/y"


# --------------------------------------------------------------------------- stage graphs


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(a + b))


def test_write_stage_graph_writes_code_and_node_table(tmp_path):
    record = RunRecord(tmp_path)
    gm = torch.fx.symbolic_trace(TwoLayer())
    paths = write_stage_graph(record, 0, "trace", gm)
    assert paths == ["graphs/00_trace.py", "graphs/00_trace.nodes.md"]
    assert all_files(tmp_path) == sorted(paths)

    code = (tmp_path / "graphs" / "00_trace.py").read_text()
    assert code.startswith(f"# stage 0: trace ({len(gm.graph.nodes)} nodes)\n")
    assert "def forward(self, a" in code and code.rstrip().endswith("return relu")
    assert "self.linear(add)" in code

    table = (tmp_path / "graphs" / "00_trace.nodes.md").read_text()
    lines = table.strip().splitlines()
    assert lines[0].startswith("| name")
    for header in ("op", "target", "users", "output_bytes", "total_bytes"):
        assert header in lines[0]
    assert len(lines) == 2 + len(gm.graph.nodes)  # header, rule, one row per node
    for node in gm.graph.nodes:
        assert any(line.startswith(f"| {node.name} ") for line in lines), node.name
    row = next(line for line in lines if line.startswith("| linear "))
    assert "call_module" in row


def test_node_table_shows_sizes_when_known(tmp_path):
    from torch.fx.passes import graph_manipulation

    gm = torch.fx.symbolic_trace(TwoLayer())
    graph_manipulation.get_size_of_all_nodes(gm, [torch.rand(4), torch.rand(4)])
    sizes = node_sizes(gm)
    table = node_table(gm)
    row = next(line for line in table.splitlines() if line.startswith("| linear "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2:] == [str(sizes["linear"]["output_bytes"]), str(sizes["linear"]["total_bytes"])]
    assert sizes["linear"]["total_bytes"] > sizes["linear"]["output_bytes"]  # weights counted


def test_write_stage_graph_includes_submodule_code(tmp_path):
    from torch.fx.passes.split_module import split_module

    model = TwoLayer()
    gm = torch.fx.symbolic_trace(model)
    split = split_module(gm, model, lambda node: 0 if node.name == "add" else 1)
    paths = write_stage_graph(RunRecord(tmp_path), 3, "partition", split)
    assert paths[0] == "graphs/03_partition.py"
    code = (tmp_path / paths[0]).read_text()
    assert code.startswith("# stage 3: partition")
    assert "# submodule submod_0" in code and "# submodule submod_1" in code
    assert "relu" in code  # the body of submod_1
    table = (tmp_path / paths[1]).read_text()
    assert "submod_0" in table and "submod_1" in table
