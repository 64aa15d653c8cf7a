"""The update file's container: a tar archive (plain or gzip) read as a stream.

An update is untrusted until its signature has been checked, and a tar archive can
name any path, so every member's name and type is checked here before a byte of it is
written anywhere. Only two shapes are accepted::

    signature                 (a regular file, always the first member)
    <bundle>/                 (optional directory entry)
    <bundle>/<file>           (regular files with plain names: no links, no subdirectories)

Anything else (an absolute path, ``..``, a link, a device node, a deeper path, a
name with odd characters) is refused with :class:`~ota.errors.UnsafePathError`.

Reading is single-pass and bounded (:mod:`ota.tarstream`): until the signature has
been checked only the signature member may be read (:data:`PRE_SIGNATURE_LIMIT`);
after it, no more than the signed statement's files need (:func:`signed_budget`).
The file itself is at most :data:`MAX_ARCHIVE_BYTES`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ota import fsio
from ota.errors import ArchiveLimitError, UnsafePathError, UpdateError
from ota.tarstream import BLOCK, MAX_EXTENSION, MAX_EXTENSIONS, Entry, TarStream, padded, shown

SIGNATURE = "signature"
SIGNATURE_LIMIT = 1 << 20  # the signature member: JSON listing every file of a bundle
MAX_ARCHIVE_BYTES = 4 << 30  # an update file, as downloaded or uploaded
# One member's headers at most: its own and MAX_EXTENSIONS full extension headers.
MEMBER_OVERHEAD = BLOCK + MAX_EXTENSIONS * (BLOCK + padded(MAX_EXTENSION))
PRE_SIGNATURE_LIMIT = MEMBER_OVERHEAD + padded(SIGNATURE_LIMIT)
# Plain names only: what a bundle's files, a bundle's name and a version may look like.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def is_plain_name(name: str) -> bool:
    return bool(PLAIN_NAME.fullmatch(name))


def member_parts(member: Entry) -> tuple[str, ...]:
    """The member's path components, once the path and the type are known to be safe."""
    name, what = member.name, shown(member.name)
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafePathError(f"{what}: absolute or non-POSIX path in the archive")
    parts = tuple(name.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"{what}: path traversal ('..', '.' or empty component)")
    if member.kind in ("symlink", "hardlink"):
        raise UnsafePathError(f"{what}: links are not allowed in an update")
    if not (member.is_file() or member.is_dir()):
        raise UnsafePathError(f"{what}: not a regular file or directory")
    if len(parts) > 2:
        raise UnsafePathError(f"{what}: nested paths are not allowed in a bundle")
    bad = [part for part in parts if not is_plain_name(part)]
    if bad:
        raise UnsafePathError(f"{what}: {shown(bad[0])} is not a plain file name")
    return parts


def signed_budget(files: Mapping[str, Mapping[str, Any]]) -> int:
    """Archive bytes after the signature's data that the signed file list accounts for:
    each file's data, the most headers it and the bundle's directory may have, the end
    marker. Nothing a signer made is longer; anything longer is not read."""
    data = sum(padded(int(entry["size"])) for entry in files.values())
    # + the signature's padding (read after the limit is set) and the end marker
    return data + (len(files) + 1) * MEMBER_OVERHEAD + 3 * BLOCK


@contextlib.contextmanager
def open_update(path: Path) -> Iterator[TarStream]:
    """The update file opened for one bounded pass (gzip detected); the stream's limit
    starts at :data:`PRE_SIGNATURE_LIMIT`."""
    with contextlib.ExitStack() as stack:
        try:
            fh = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise UpdateError(f"{path}: cannot read: {exc.strerror or exc}") from None
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_ARCHIVE_BYTES:
            raise ArchiveLimitError(
                f"{path.name}: {size} bytes; an update is at most {MAX_ARCHIVE_BYTES}"
            )
        yield TarStream(fh, path.name, PRE_SIGNATURE_LIMIT)


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
