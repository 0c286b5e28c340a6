"""File operations that stay inside one folder: never through a symbolic link, never above it.

A path inside the folder is walked one name at a time from an open folder, each step opened with
O_NOFOLLOW, so a link planted anywhere on the way (`recipes -> /etc`, `x.yaml -> ~/.bashrc`)
stops the operation with an OSError instead of leading it elsewhere:

    write_inside(Path("fxflow_conf"), "recipes/my.yaml", b"...")   # OSError(ELOOP) if a link is in the way
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Sequence

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def open_folder(root: int, parts: Sequence[str], create: bool = False) -> int:
    """An fd of the folder `parts` below the open folder `root`, reached without following links
    (OSError when one is a link, not a folder or, unless `create`, missing). The caller closes it."""
    fd = os.dup(root)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise OSError(f"{part!r} is not a plain folder name")
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | DIRECTORY | NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_inside(folder: Path, relative: str, data: bytes) -> Path:
    """Write `data` to folder/relative (folders on the way created), refusing links on the way and at
    the file itself. The file is written beside and renamed over the old one, so a hard link to a
    file elsewhere is replaced, never written through."""
    *parents, name = relative.split("/")
    root = os.open(folder, os.O_RDONLY | DIRECTORY)
    try:
        fd = open_folder(root, parents, create=True)
    finally:
        os.close(root)
    try:
        if name in ("", ".", ".."):
            raise OSError(f"{name!r} is not a plain file name")
        try:
            if stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
                raise OSError(errno.ELOOP, "a symbolic link is in the way", name)
        except FileNotFoundError:
            pass
        temp = f".{name}.{secrets.token_hex(4)}.tmp"
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
            os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            os.unlink(temp, dir_fd=fd)
            raise
    finally:
        os.close(fd)
    return folder / relative
