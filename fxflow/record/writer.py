"""Atomic writes into a run directory, so a crash never leaves a half-written file that looks complete.

Every path fxflow writes (or hands a stage to write into) is first claimed in the folder's
manifest, `.fxflow_manifest.json`: the relative paths fxflow put there. Overwriting a record
(`FXFLOW_OVERWRITE=1`, a re-run sweep job) removes only what the manifest claims
(fxflow.record.owned), so a claim is written before the file and only for a path that did not
exist yet: a file the user had there is never claimed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = ".fxflow_manifest.json"
_MANIFEST_KEY = "fxflow_manifest"  # marks the file as fxflow's, with its format version


class RecordPathError(ValueError):
    """A record path that would leave the run directory (absolute, `..`, empty parts)."""


def plain_relative(relative: str) -> str:
    """`relative` as a clean path inside a folder ('a/b'); RecordPathError when it is absolute, has
    `..`/`.`/empty parts or a backslash: such a path could name something outside the folder."""
    text = str(relative)
    parts = text.split("/")
    if not text or text.startswith("/") or "\\" in text or "\x00" in text or any(p in ("", ".", "..") for p in parts):
        raise RecordPathError(f"{text!r} is not a plain path inside the record folder")
    return str(PurePosixPath(*parts))


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest ({"claimed": [...], ...}); None when there is none or it is not fxflow's.
    Entries that are not plain relative paths are dropped: a forged manifest cannot name the outside."""
    path = Path(folder) / MANIFEST
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            data = json.loads(handle.read(4 * 1024 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get(_MANIFEST_KEY) != 1 or not isinstance(data.get("claimed"), list):
        return None
    claimed = []
    for entry in data["claimed"]:
        try:
            claimed.append(plain_relative(entry))
        except RecordPathError:
            continue
    return {**data, "claimed": claimed}


class RunRecord:
    """Writes files under one run directory; every write is temp file + rename, every path claimed first."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._manifest = read_manifest(self.run_dir) or {_MANIFEST_KEY: 1, "claimed": []}

    @property
    def claimed(self) -> list[str]:
        return list(self._manifest["claimed"])

    def path(self, relative: str) -> Path:
        """The path of `relative` in the record, claimed for fxflow (a file or a folder a stage fills)."""
        self.claim(relative)
        return self.run_dir / relative

    def claim(self, relative: str, existing: bool = False) -> None:
        """Record `relative` in the manifest before anything is written there. A path that exists and
        is not claimed yet is not fxflow's and stays unclaimed, unless `existing` (files Hydra wrote
        for this run into a folder fxflow checked)."""
        relative = plain_relative(relative)
        claimed = self._manifest["claimed"]
        if relative in claimed or any(relative.startswith(c + "/") for c in claimed):
            return
        if not existing and os.path.lexists(self.run_dir / relative):
            return
        claimed.append(relative)
        self._write_atomic(self.run_dir / MANIFEST, json.dumps(self._manifest, indent=1).encode("utf-8"))

    def set_note(self, key: str, value: Any) -> None:
        """Keep `value` under `key` in the manifest (a sweep keeps what identifies it)."""
        self._manifest[key] = value
        self._write_atomic(self.run_dir / MANIFEST, json.dumps(self._manifest, indent=1).encode("utf-8"))

    def note(self, key: str) -> Any:
        return self._manifest.get(key)

    def write_bytes(self, relative: str, data: bytes) -> Path:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._write_atomic(target, data)
        return target

    def write_text(self, relative: str, text: str) -> Path:
        return self.write_bytes(relative, text.encode("utf-8"))

    def write_json(self, relative: str, value: Any) -> Path:
        return self.write_text(relative, to_json(value))

    def rewrite_in_place(self, relative: str, text: str) -> Path:
        """Last resort when an atomic write cannot get space (disk full, a folder that takes no new
        files): truncate the existing, claimed file and write `text` into it, never through a
        symlink. Truncating frees the old content's blocks, so a short text usually fits."""
        relative = plain_relative(relative)
        if relative not in self._manifest["claimed"]:
            raise RecordPathError(f"{relative} is not a file of this record")
        target = self.run_dir / relative
        fd = os.open(target, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        return target

    @staticmethod
    def _write_atomic(target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; record files follow the umask
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=_jsonable) + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _jsonable(value: Any) -> Any:
    """Fallback for values json cannot encode (tensors, dtypes, paths): a readable string."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
