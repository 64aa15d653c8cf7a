"""The update file's container: a tar archive (plain or gzip) read as a stream.

An update is untrusted until its signature has been checked, and a tar archive can
name any path, so every member's name and type is checked here before a byte of it is
written anywhere. Only two shapes are accepted::

    signature                 (a regular file, always the first member)
    <bundle>/                 (optional directory entry)
    <bundle>/<file>           (regular files with plain names: no links, no subdirectories)

Anything else (an absolute path, ``..``, a link, a device node, a deeper path, a
name with odd characters) is refused with :class:`~ota.errors.UnsafePathError`.
Reading is single-pass (``r|*``), so a huge or endless file is never seeked through.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ota import fsio
from ota.errors import CorruptArchiveError, UnsafePathError, UpdateError

SIGNATURE = "signature"
# Plain names only: what a bundle's files, a bundle's name and a version may look like.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def is_plain_name(name: str) -> bool:
    return bool(PLAIN_NAME.fullmatch(name))


def member_parts(member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's path components, once the path and the type are known to be safe."""
    name = member.name
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafePathError(f"{name!r}: absolute or non-POSIX path in the archive")
    parts = tuple(name.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"{name!r}: path traversal ('..', '.' or empty component)")
    if member.issym() or member.islnk():
        raise UnsafePathError(f"{name!r}: links are not allowed in an update")
    if not (member.isreg() or member.isdir()) or member.issparse():
        raise UnsafePathError(f"{name!r}: not a regular file or directory")
    if len(parts) > 2:
        raise UnsafePathError(f"{name!r}: nested paths are not allowed in a bundle")
    bad = [part for part in parts if not is_plain_name(part)]
    if bad:
        raise UnsafePathError(f"{name!r}: {bad[0]!r} is not a plain file name")
    return parts


@contextlib.contextmanager
def archive_errors(path: Path) -> Iterator[None]:
    """Turn what tarfile/gzip raise for damaged input into CorruptArchiveError."""
    try:
        yield
    except UpdateError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptArchiveError(f"{path.name}: truncated or corrupt archive: {exc}") from None


@contextlib.contextmanager
def open_stream(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive opened for one sequential pass (compression detected)."""
    with contextlib.ExitStack() as stack:
        try:
            fh = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise UpdateError(f"{path}: cannot read: {exc.strerror or exc}") from None
        stack.enter_context(archive_errors(path))
        yield stack.enter_context(tarfile.open(fileobj=fh, mode="r|*"))


def _info(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def write_archive(
    out_file: Path, signature: bytes, bundle_name: str, bundle_dir: Path, names: Sequence[str]
) -> None:
    """Write the update file atomically; gzip when ``out_file`` ends in .gz or .tgz.

    The output is reproducible (zero times and owners), so signing the same bundle with
    the same key twice gives the same bytes.
    """
    compress = out_file.name.endswith((".gz", ".tgz"))
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    with open(tmp, "wb") as raw:
        # GzipFile does not close the file it wraps; a plain tar writes to raw itself.
        stream: contextlib.AbstractContextManager[Any] = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
            if compress
            else contextlib.nullcontext(raw)
        )
        with stream as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(SIGNATURE, len(signature)), io.BytesIO(signature))
            tar.addfile(_info(bundle_name, 0, tarfile.DIRTYPE))
            for name in names:
                path = bundle_dir / name
                with open(path, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    tar.addfile(_info(f"{bundle_name}/{name}", size), fh)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, out_file)
    fsio.fsync_dir(out_file.parent)
