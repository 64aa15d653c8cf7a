"""Small configfs steps for the gadget builders; each failure says which file and value.

configfs creates a function's attributes with its directory, so an attribute that is
absent is one this kernel does not have (:func:`has`); writing it would fail with EACCES.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as out:
            out.write(value)
    except OSError as exc:
        raise OSError(exc.errno, f"writing {value.strip()!r} to {path}: {exc.strerror}") from None


def try_write(path: Path, value: str) -> bool:
    """Write an attribute that older kernels keep read-only; False if they did."""
    try:
        write(path, value)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EINVAL, errno.EROFS):
            raise
        return False


def has(path: Path) -> bool:
    """Whether this kernel has the attribute (configfs made it with its directory)."""
    return path.is_file()


def mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def symlink(target: Path, link: Path) -> None:
    if not link.is_symlink():
        os.symlink(target, link)


def unlink(path: Path) -> None:
    if path.is_symlink():
        path.unlink()


def rmdir(path: Path) -> None:
    if path.is_dir():
        path.rmdir()
