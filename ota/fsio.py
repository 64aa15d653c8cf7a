"""Durable file operations for the update agent, each followed by a named checkpoint.

Crash safety rests on three POSIX facts: ``rename(2)`` replaces a name atomically, data
is durable only after ``fsync`` of the file, and a new or replaced *name* is durable
only after ``fsync`` of its directory. Every write the agent makes goes through here so
that those rules are applied in one place.

:func:`checkpoint` is called after every step that changes the disk (a chunk written,
a file synced, a rename). It does nothing unless a hook is installed: the crash test
installs one that SIGKILLs its own process at the N-th checkpoint, which is how the
agent is killed at hundreds of exact, reproducible points between durable steps.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

CHUNK = 64 * 1024

CheckpointHook = Callable[[str], None]
_hook: CheckpointHook | None = None


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def set_checkpoint_hook(hook: CheckpointHook | None) -> None:
    """Install (or remove, with None) the function called at every checkpoint."""
    global _hook
    _hook = hook


def checkpoint(what: str) -> None:
    """A point between durable steps where a test may stop the process."""
    if _hook is not None:
        _hook(what)


def fsync_dir(path: Path) -> None:
    """Make the names in ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """``mkdir -p`` whose new entry is durable in its parent."""
    if path.is_dir():
        return
    make_dir(path.parent)
    path.mkdir(exist_ok=True)
    fsync_dir(path.parent)
    checkpoint(f"mkdir {path.name}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    checkpoint(f"write {tmp.name}")
    os.replace(tmp, path)
    fsync_dir(path.parent)
    checkpoint(f"rename {path.name}")


def write_stream(
    src: Readable,
    dst: Path,
    *,
    hasher: Hasher | None = None,
    limit: int | None = None,
    append: bool = False,
    durable: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Copy ``src`` into ``dst`` in chunks; returns the bytes written.

    ``dst`` is never followed if it is a symbolic link. Without ``append`` it must not
    exist yet (a file planted in advance is an error, not something to overwrite).
    ``limit``: stop after this many bytes and return ``limit + 1`` if more were there,
    so callers can refuse an oversized member without reading all of it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
    flags |= os.O_APPEND if append else os.O_EXCL
    fd = os.open(dst, flags, 0o644)
    written = 0
    try:
        while True:
            want = CHUNK if limit is None else min(CHUNK, limit + 1 - written)
            block = src.read(want) if want > 0 else b""
            if not block:
                break
            _write_all(fd, block)
            written += len(block)
            if hasher is not None:
                hasher.update(block)
            if on_chunk is not None:
                on_chunk(len(block))
            checkpoint(f"chunk {dst.name}")
            if limit is not None and written > limit:
                break
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        checkpoint(f"fsync {dst.name}")
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def copy_file(src: Path, dst: Path) -> None:
    """Copy a regular file durably (``dst`` must not exist)."""
    with open(src, "rb") as fh:
        write_stream(fh, dst)


def copy_flat_dir(src: Path, dst: Path) -> None:
    """Copy a directory of regular files (a bundle) durably; refuses links and subdirs."""
    dst.mkdir()
    for entry in sorted(src.iterdir()):
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{entry}: not a regular file; a bundle holds plain files only")
        copy_file(entry, dst / entry.name)
    fsync_dir(dst)
    fsync_dir(dst.parent)
    checkpoint(f"copied {dst.name}")


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything below it, one checkpoint per entry; absent is fine."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        for entry in sorted(path.iterdir()):
            remove_tree(entry)
        path.rmdir()
    else:
        path.unlink()
    checkpoint(f"removed {path.name}")


def replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: a new link, renamed over the old one."""
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    checkpoint(f"symlink {tmp.name}")
    os.replace(tmp, link)
    fsync_dir(link.parent)
    checkpoint(f"rename {link.name}")


def rename(src: Path, dst: Path) -> None:
    """Durable rename within one directory tree."""
    os.replace(src, dst)
    fsync_dir(dst.parent)
    checkpoint(f"rename {dst.name}")
