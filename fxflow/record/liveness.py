"""Whether the process a `running` record names is still at work; readers show a dead one as `abandoned`.

A summary.json says `running` from the run's first write until its last. When the process died
without a final write (killed, power lost, a disk that took no more bytes), the record would say
`running` forever; every reader of records (the sweep summary, `fxflow diff`) asks `shown_status`
instead of reading `status`:

    shown_status({"status": "running", "process": {"pid": 4242, "host": "me", "started_at": "..."}})
    # -> "abandoned" when process 4242 on this host is gone, or is another process that
    #    started after the run did (the pid was reused); "running" otherwise

A record from another host cannot be checked from here and stays `running`.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime
from typing import Any

ABANDONED = "abandoned"
_SLACK_S = 2.0  # clock ticks and rounding between a process's start and the time it wrote down


def shown_status(summary: dict[str, Any]) -> str:
    """The record's status as it stands now: `abandoned` for a `running` record whose process is gone."""
    status = str(summary.get("status", "missing"))
    if status == "running" and process_gone(summary.get("process")):
        return ABANDONED
    return status


def process_gone(process: Any) -> bool:
    """True when `process` ({pid, host, started_at}) names a process of this host that no longer runs."""
    if not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return False
    pid = process.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    started = _epoch(process.get("started_at"))
    return not alive(pid, started)


def alive(pid: int, not_after: float | None = None) -> bool:
    """Whether process `pid` runs (a zombie does not). With `not_after` (epoch seconds), a process
    that started later than that is another process that reuses the pid, and counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc here: existence is all we can tell
    state, started = stat
    if state in ("Z", "X"):
        return False
    return not (not_after is not None and started is not None and started > not_after + _SLACK_S)


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time in epoch seconds) from /proc, or None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except FileNotFoundError:
        return ("X", None) if os.path.isdir("/proc/self") else None
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    state = fields[0] if fields else "?"
    try:
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks since boot
        return state, _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return state, None


def _boot_time() -> float:
    with open("/proc/stat", "rb") as handle:
        for line in handle:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return time.time() - time.monotonic()


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None
