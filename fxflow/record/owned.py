"""What in a record folder is fxflow's, and removing only that.

A folder's manifest (fxflow.record.writer) claims the paths fxflow wrote there. An entry on disk
is fxflow's when the manifest claims it or a folder above it, when it is a temp file of a
claimed file (`.NAME.XXXX.tmp`, left by a crash mid-write), when it is a folder on the way to a
claimed path, or when it lies in a sub-folder that is a record of its own (a sweep's job
folders) and that record's manifest claims it. Everything else is the user's:

    foreign(folder)        # what is not fxflow's; overwriting refuses a folder where this is not []
    remove_owned(folder)   # removes what is fxflow's and nothing else

Nothing here follows a symlink: the folder is walked with lstat, and removal opens each folder on
the way with O_NOFOLLOW, so a manifest that claims `../x`, or a claimed name that is a link to
elsewhere, removes nothing outside the folder (a link is removed as a link).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

from fxflow.record.confined import DIRECTORY, open_folder
from fxflow.record.writer import MANIFEST, RunRecord, read_manifest

_TEMP = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")


def is_empty(folder: Path) -> bool:
    """True for a missing folder or one with nothing in it (a file, or a link to one, is not empty)."""
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return not os.path.lexists(folder)  # a dangling link is something
    except OSError:
        return False


def foreign(folder: Path, nested: bool = True) -> list[str]:
    """Relative paths under `folder` that fxflow did not write (sorted); [] for a folder that holds
    only fxflow's records. `nested`: sub-folders with their own manifest are records of their own."""
    claimed = _claims(folder)
    if claimed is None:
        return sorted(_names(folder))
    found: list[str] = []
    _walk(folder, "", claimed, nested, found)
    return sorted(found)


def remove_owned(folder: Path, keep: tuple[str, ...] = (), nested: bool = True) -> list[str]:
    """Remove what the folder's manifest (and its job folders' manifests) claim, except `keep`;
    returns the relative paths left that are not fxflow's. The manifest then claims only `keep`."""
    claimed = _claims(folder) or []
    root = os.open(folder, os.O_RDONLY | DIRECTORY)
    try:
        for entry in claimed:
            if entry not in keep:
                _remove_at(root, entry)
        for entry in sorted(_names(folder)):
            path = folder / entry
            if nested and entry != MANIFEST and _is_dir(path) and read_manifest(path) is not None:
                remove_owned(path, nested=False)
                _rmdir_if_empty(root, entry)
        for entry in sorted({str(Path(c).parent) for c in claimed if c not in keep} - {"."}, key=len, reverse=True):
            for parent in [entry, *map(str, Path(entry).parents)][:-1]:
                _rmdir_if_empty(root, parent)
        if keep:
            RunRecord(folder).set_note("claimed", [c for c in claimed if c in keep])
        else:
            try:
                os.unlink(MANIFEST, dir_fd=root)
            except FileNotFoundError:
                pass
    finally:
        os.close(root)
    return foreign(folder) if not is_empty(folder) else []


# ----------------------------------------------------------------------------------------- helpers


def _claims(folder: Path) -> list[str] | None:
    manifest = read_manifest(folder)
    return None if manifest is None else manifest["claimed"]


def _names(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _walk(folder: Path, prefix: str, claimed: list[str], nested: bool, found: list[str]) -> None:
    """Append to `found` every entry under folder/prefix that is not covered by `claimed`."""
    names = set(_names(folder / prefix if prefix else folder))
    for name in sorted(names):
        rel = f"{prefix}/{name}" if prefix else name
        if rel == MANIFEST or rel in claimed or any(rel.startswith(c + "/") for c in claimed):
            continue
        temp = _TEMP.fullmatch(name)
        if temp and (f"{prefix}/{temp['name']}" if prefix else temp["name"]) in claimed:
            continue
        path = folder / rel
        if _is_dir(path) and any(c.startswith(rel + "/") for c in claimed):
            _walk(folder, rel, claimed, nested, found)
        elif nested and not prefix and _is_dir(path) and read_manifest(path) is not None:
            found.extend(f"{rel}/{inner}" for inner in foreign(path, nested=False))
        else:
            found.append(rel)


def _open_parent(root: int, relative: str) -> tuple[int, str] | None:
    """An fd of the folder holding `relative` (reached from `root` without following links), and the
    last name; None when a folder on the way is missing or is not a real folder."""
    *parents, name = relative.split("/")
    try:
        return open_folder(root, parents), name
    except OSError:
        return None


def _remove_at(root: int, relative: str) -> None:
    """Remove `relative` under the folder open as `root`: a link or file is unlinked, a real folder
    removed with everything in it; never through a link."""
    opened = _open_parent(root, relative)
    if opened is None:
        return
    fd, name = opened
    try:
        try:
            mode = os.lstat(name, dir_fd=fd).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode) and sys.version_info >= (3, 11):
            shutil.rmtree(name, dir_fd=fd)  # fd-based: does not follow links inside
        elif stat.S_ISDIR(mode):
            shutil.rmtree(f"/proc/self/fd/{fd}/{name}")  # Python 3.10: no dir_fd; rmtree still keeps to the folder
        else:
            os.unlink(name, dir_fd=fd)
        _remove_temps(fd, name)
    finally:
        os.close(fd)


def _remove_temps(fd: int, name: str) -> None:
    """Temp files a crash left beside a claimed file."""
    for entry in os.listdir(fd):
        temp = _TEMP.fullmatch(entry)
        if temp and temp["name"] == name:
            try:
                if not stat.S_ISDIR(os.lstat(entry, dir_fd=fd).st_mode):
                    os.unlink(entry, dir_fd=fd)
            except OSError:
                pass


def _rmdir_if_empty(root: int, relative: str) -> None:
    opened = _open_parent(root, relative)
    if opened is None:
        return
    fd, name = opened
    try:
        os.rmdir(name, dir_fd=fd)
    except OSError:
        pass  # not empty (the user's files), not a folder, or gone
    finally:
        os.close(fd)
