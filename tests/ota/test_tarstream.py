"""The bounded tar reader reads what tar writers write, exactly as tarfile does."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ota.errors import ArchiveLimitError, CorruptArchiveError
from ota.tarstream import Entry, TarStream
from tools.hostile.ota import END, member, pax_record, tar_header

# Past ustar's 100-byte name field: a PAX record, a GNU long name or a ustar prefix.
LONG = "p" * 60 + "/" + "m" * 90


def _entries(data: bytes, limit: int = 1 << 20) -> list[tuple[Entry, bytes]]:
    stream = TarStream(io.BytesIO(data), "test", limit)
    out = []
    while (entry := stream.next_entry()) is not None:
        out.append((entry, stream.read()))
    return out


def _written(fmt: int, compress: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in (("signature", b"{}"), (LONG, b"x" * 700), ("face_detection/e", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("face_detection")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    "fmt",
    [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT],
    ids=["pax", "gnu", "ustar"],
)
def test_reads_what_tarfile_writes_as_tarfile_reads_it(fmt: int, compress: bool) -> None:
    data = _written(fmt, compress)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        want = [
            (m.name, m.isdir(), m.size, tar.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        ]
    got = [(e.name, e.is_dir(), e.size, body) for e, body in _entries(data)]
    assert got == want


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar command")
def test_reads_what_the_tar_command_writes(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ("n" * 110)).write_bytes(b"payload")
    out = tmp_path / "x.tgz"
    subprocess.run(["tar", "-czf", str(out), "-C", str(tmp_path), "b"], check=True)
    names = {e.name: body for e, body in _entries(out.read_bytes())}
    assert names == {"b": b"", "b/" + "n" * 110: b"payload"}


def test_pax_size_and_path_override_the_header() -> None:
    pax = pax_record("path", b"renamed") + pax_record("size", b"3")
    data = member("./PaxHeaders/x", pax, b"x") + tar_header("x", 0) + b"abc".ljust(512, b"\0")
    [(entry, body)] = _entries(data + END)
    assert (entry.name, entry.size, body) == ("renamed", 3, b"abc")


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"\0" * 100 + b"x" * 412, CorruptArchiveError, "not a tar archive"),
        (b"BZh91AY&SY" + b"\0" * 502, CorruptArchiveError, "bzip2 and xz"),
        (
            tar_header("a", 0)[:148] + b"0000000\0" + tar_header("a", 0)[156:],
            CorruptArchiveError,
            "checksum",
        ),
        (tar_header("a", 10)[:300], CorruptArchiveError, "truncated"),
        (tar_header("a", 10) + b"x" * 5, CorruptArchiveError, "truncated"),
        (tar_header("a", 0, size_field=b"\xff" * 12), CorruptArchiveError, "negative"),
        (tar_header("a", 0, size_field=b"12x4\0"), CorruptArchiveError, "octal"),
        (tar_header("././@LongLink", 5000, b"L"), ArchiveLimitError, "GNU long-name"),
        (tar_header("x", 1 << 80, b"x"), ArchiveLimitError, "PAX extension header"),
        (member("g", pax_record("path", b"evil"), b"g"), CorruptArchiveError, "global"),
        (member("x", pax_record("path", b"ab"), b"x") * 2, CorruptArchiveError, "two extension"),
        (member("x", b"99 path=ab\n", b"x"), CorruptArchiveError, "malformed PAX"),
        (member("x", b"1 path=ab\n", b"x"), CorruptArchiveError, "malformed PAX"),
        (
            member("x", pax_record("comment", b"c"), b"x") * 4,
            ArchiveLimitError,
            "more than 3 extension",
        ),
        (member("L", b"a", b"L") + END, CorruptArchiveError, "without a member"),
        (tar_header("d/", 5, b"5"), CorruptArchiveError, "directory 'd' with data"),
    ],
)
def test_damaged_or_oversized_headers_are_refused_before_their_data(
    data: bytes, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _entries(data)


def test_the_limit_stops_the_stream_before_the_read() -> None:
    data = member("a", b"x" * 2000) + END
    stream = TarStream(io.BytesIO(data), "test", 1024)
    entry = stream.next_entry()
    assert entry is not None and entry.size == 2000
    with pytest.raises(ArchiveLimitError, match="past 1024 bytes"):
        stream.read()
    assert stream.position == 512


def test_compressed_padding_that_yields_nothing_is_refused() -> None:
    empty_blocks = b"\x00\x00\x00\xff\xff" * 100_000  # deflate stored blocks of 0 bytes
    data = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + empty_blocks
    with pytest.raises(ArchiveLimitError, match="compressed bytes give only 0"):
        _entries(data, limit=64 * 1024)
