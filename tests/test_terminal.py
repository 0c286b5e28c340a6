"""The README's sweep on an 80-column terminal (a pseudo-terminal): every swept value and every
node name of the partition tables is printed whole."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import REPO
from test_readme import sweep_command

pytestmark = pytest.mark.process


def run_on_terminal(argv: list[str], cwd, columns: int = 80, timeout: float = 300) -> tuple[int, str]:
    """Run `python -m fxflow ARGV` with a terminal of `columns` columns as stdout and stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "fxflow", *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    text = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\r|\x1b\[[0-9;?]*[AK]", "\n", text)  # a progress line redrawn: each drawing on a line
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", text)  # colours, cursor moves


def test_readme_sweep_at_80_columns_shows_swept_values_and_node_names_whole(tmp_path):
    code, out = run_on_terminal([*sweep_command(), "report.pictures=false"], tmp_path)
    assert code == 0, out[-3000:]
    lines = out.splitlines()
    # Hydra's launcher logs its job list as it is; a record's path is one line, never wrapped, to copy
    ours = [line for line in lines if "[HYDRA]" not in line and not line.startswith(("record: ", "sweep summary: "))]
    assert all(len(line.rstrip()) <= 80 for line in ours), max(ours, key=len)
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("sweep: 4 jobs")):]
    for number, values in enumerate([("three_of_1500b", "size_based"), ("three_of_1500b", "cost_aware"),
                                     ("four_of_1200b", "size_based"), ("four_of_1200b", "cost_aware")]):
        row = next(line for line in table if re.match(rf"\s*{number}\s", line))
        assert all(value in row.split() or f"{value}" in re.split(r"[\s│|]+", row) for value in values), row
    words = set(re.findall(r"[A-Za-z0-9_.]+", out))
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    for summary in sweep.glob("*/summary.json"):
        metrics = json.loads(summary.read_text())["metrics"]
        nodes = {n for key, value in metrics.items() if key.endswith(".compute_nodes") for n in value[:6]}
        assert nodes and nodes <= words, nodes - words  # each shown node name appears whole
