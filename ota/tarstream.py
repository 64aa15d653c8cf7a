"""A tar archive (plain or gzip) read once, front to back, never past a byte limit.

Python's :mod:`tarfile` is not used to read updates: it reads a PAX or GNU long-name
extension header into memory whole, whatever size its header claims, so a 1.5 MB
gzip that inflates to one 1.5 GB "file name" cost gigabytes before any signature was
looked at. Here every length is compared with a limit *before* the bytes are read:

- an extension header (PAX ``x``/``g``, GNU ``L``/``K``) holds at most
  :data:`MAX_EXTENSION` bytes, and a member has at most :data:`MAX_EXTENSIONS` of them;
- the decompressed stream stops at :attr:`TarStream.limit`, which the caller sets from
  what it is prepared to read (before the signature: the signature member; after it:
  the sizes the signed statement declares, see :func:`ota.archive.signed_budget`);
- gzip input is inflated in bounded steps, and the compressed bytes consumed are bounded
  by that limit too (:func:`raw_budget`), so neither a bomb nor a stream of empty deflate
  blocks runs on;
- a member's data is handed out only up to its header's size.

Only what an update needs is understood: ustar headers (POSIX or GNU magic), octal or
base-256 numbers, PAX ``path``/``linkpath``/``size`` and GNU long names/links. Anything
else that could change how the stream is cut up (GNU sparse maps, a global header that
renames) is refused rather than guessed at.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO

from appliance.untrusted import preview
from ota.errors import ArchiveLimitError, CorruptArchiveError

BLOCK = 512
MAX_EXTENSION = 4096  # bytes of one extension header: names here are at most 257 bytes
MAX_EXTENSIONS = 3  # extension headers before one member (PAX, long name, long link)
RAW_CHUNK = 16 * 1024  # compressed bytes fed to zlib at a time
INFLATE_CHUNK = 64 * 1024  # decompressed bytes produced at a time
# gzip never needs much more input than it gives output (stored blocks: +5 bytes per
# 64 KiB); more than this per byte of output is padding meant to keep the CPU busy.
RAW_SLACK_DIVISOR = 16
RAW_SLACK = 64 * 1024

_ZERO_BLOCK = bytes(BLOCK)
_FILE_FLAGS = (b"0", b"\0", b"7")
_KINDS = {b"5": "dir", b"1": "hardlink", b"2": "symlink", b"3": "device", b"4": "device"}
_KINDS |= {b"6": "fifo", b"S": "sparse"}
_EXTENSIONS = {b"x": "PAX", b"g": "PAX global", b"L": "GNU long-name", b"K": "GNU long-link"}
_PAX_RENAMES = ("path", "linkpath", "size")


def padded(size: int) -> int:
    """``size`` rounded up to whole blocks: what a member's data occupies."""
    return -(-size // BLOCK) * BLOCK


def raw_budget(limit: int) -> int:
    """Compressed bytes that may be consumed to produce ``limit`` decompressed bytes."""
    return limit + limit // RAW_SLACK_DIVISOR + RAW_SLACK


@dataclass(frozen=True)
class Entry:
    """One member as its headers describe it (extension headers applied)."""

    name: str
    kind: str  # file, dir, symlink, hardlink, device, fifo, sparse or other
    size: int
    linkname: str
    offset: int  # where its first header starts in the decompressed stream

    def is_file(self) -> bool:
        return self.kind == "file"

    def is_dir(self) -> bool:
        return self.kind == "dir"


def shown(name: str, limit: int = 80) -> str:
    """A name for an error message: never a whole hostile one echoed back."""
    return preview(name, limit)


class _Plain:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def read(self, size: int) -> bytes:
        return self.raw.read(size)


class _Gzip:
    """gzip inflated in steps of at most :data:`INFLATE_CHUNK` bytes."""

    def __init__(self, raw: BinaryIO, source: TarStream) -> None:
        self.raw = raw
        self.source = source
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed input not inflated yet
        self.out = b""
        self.out_at = 0  # an offset, so handing out 512 bytes never copies the rest

    def read(self, size: int) -> bytes:
        if self.out_at >= len(self.out):
            self.out, self.out_at = self._inflate(), 0
        data = self.out[self.out_at : self.out_at + size]
        self.out_at += len(data)
        return data

    def _inflate(self) -> bytes:
        while not self.inflater.eof:  # bytes after the gzip member are not read
            if not self.pending:
                self.pending = self.raw.read(RAW_CHUNK)
                self.source.consumed_raw(len(self.pending))
                if not self.pending:
                    raise CorruptArchiveError(f"{self.source.name}: truncated gzip stream")
            try:
                data = self.inflater.decompress(self.pending, INFLATE_CHUNK)
            except zlib.error as exc:
                raise CorruptArchiveError(f"{self.source.name}: corrupt gzip data: {exc}") from None
            self.pending = self.inflater.unconsumed_tail
            if data:
                return data
        return b""


class TarStream:
    """Entries and their data, in archive order; see the module docstring.

    ``limit``: decompressed bytes that may be read in all (raise it once more is
    allowed, as after the signature has been checked). Going past it, or past any
    other limit, raises :class:`~ota.errors.ArchiveLimitError` before the read.
    """

    def __init__(self, raw: BinaryIO, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.position = 0  # decompressed bytes consumed
        self.raw_read = 0
        self._remaining = 0  # data bytes of the current entry not yet read
        self._padding = 0
        magic = raw.read(6)
        raw.seek(0)
        if magic.startswith((b"BZh", b"\xfd7zXZ")):
            raise CorruptArchiveError(f"{name}: bzip2 and xz are not read; use gzip or plain tar")
        gzipped = magic.startswith(b"\x1f\x8b")
        self._source: _Plain | _Gzip = _Gzip(raw, self) if gzipped else _Plain(raw)

    # -- bytes ----------------------------------------------------------------------------

    def consumed_raw(self, count: int) -> None:
        self.raw_read += count
        if self.raw_read > raw_budget(self.limit):
            raise ArchiveLimitError(
                f"{self.name}: {self.raw_read} compressed bytes give only {self.position} "
                "bytes of archive; refusing to inflate padding"
            )

    def _take(self, size: int, what: str) -> bytes:
        """``size`` bytes (fewer only at the end of the stream), within the limit."""
        if self.position + size > self.limit:
            raise ArchiveLimitError(
                f"{self.name}: {what} at offset {self.position} would read the archive "
                f"past {self.limit} bytes, more than its signed contents need"
            )
        parts, got = [], 0
        while got < size:
            data = self._source.read(size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.position += got
        return b"".join(parts)

    def _exactly(self, size: int, what: str) -> bytes:
        data = self._take(size, what)
        if len(data) != size:
            raise CorruptArchiveError(f"{self.name}: truncated archive ({what})")
        return data

    def read(self, size: int = -1) -> bytes:
        """Data of the current entry: at most ``size`` bytes, b"" once it is all read."""
        size = self._remaining if size < 0 else min(size, self._remaining)
        if size <= 0:
            return b""
        data = self._exactly(size, "member data")
        self._remaining -= size
        return data

    def _skip_rest(self) -> None:
        while self._remaining:
            self.read(min(self._remaining, INFLATE_CHUNK))
        if self._padding:
            self._exactly(self._padding, "padding")
            self._padding = 0

    # -- headers --------------------------------------------------------------------------

    def next_entry(self) -> Entry | None:
        """The next member (the unread rest of the current one skipped); None at the end."""
        self._skip_rest()
        overrides: dict[str, str] = {}
        start = self.position
        for _ in range(MAX_EXTENSIONS + 1):
            block = self._take(BLOCK, "a header")
            if not block or block == _ZERO_BLOCK:  # end of archive (marker or plain EOF)
                if overrides:
                    raise CorruptArchiveError(f"{self.name}: extension header without a member")
                return None
            if len(block) != BLOCK:
                raise CorruptArchiveError(f"{self.name}: truncated archive (a header)")
            header = _parse_header(block, self.name, self.position - BLOCK)
            flag = header.flag
            if flag not in _EXTENSIONS:
                return self._entry(header, overrides, start)
            if header.size > MAX_EXTENSION:
                raise ArchiveLimitError(
                    f"{self.name}: {_EXTENSIONS[flag]} extension header at offset "
                    f"{self.position - BLOCK} claims {header.size} bytes; at most "
                    f"{MAX_EXTENSION} are read"
                )
            data = self._exactly(padded(header.size), "an extension header")[: header.size]
            self._apply_extension(flag, data, overrides)
        raise ArchiveLimitError(
            f"{self.name}: more than {MAX_EXTENSIONS} extension headers for one member "
            f"at offset {start}"
        )

    def _apply_extension(self, flag: bytes, data: bytes, overrides: dict[str, str]) -> None:
        if flag in (b"L", b"K"):
            found = {"path" if flag == b"L" else "linkpath": _text(data.split(b"\0", 1)[0])}
        else:
            found = _pax_records(data, self.name)
            if any(key.startswith("GNU.sparse.") for key in found):
                found["kind"] = "sparse"
            if flag == b"g":
                if any(key in found for key in _PAX_RENAMES):
                    raise CorruptArchiveError(
                        f"{self.name}: a PAX global header that renames or resizes members"
                    )
                return
        for key, value in found.items():
            if key in _PAX_RENAMES or key == "kind":
                if key in overrides:
                    raise CorruptArchiveError(
                        f"{self.name}: two extension headers set {key!r} of one member"
                    )
                overrides[key] = value

    def _entry(self, header: _Header, overrides: dict[str, str], start: int) -> Entry:
        size = header.size
        if "size" in overrides:
            text = overrides["size"]
            if not (text.isascii() and text.isdigit() and len(text) <= 20):
                raise CorruptArchiveError(f"{self.name}: bad PAX size {shown(text)}")
            size = int(text)
        kind = overrides.get("kind") or header.kind
        name = overrides.get("path", header.name)
        if kind == "file" and name.endswith("/") and header.flag == b"\0":
            kind = "dir"  # how the old V7 format wrote directories
        if kind == "dir":
            name = name.rstrip("/")
        if kind in ("file", "other", "sparse"):
            self._remaining, self._padding = size, padded(size) - size
        elif size and kind == "dir":
            raise CorruptArchiveError(f"{self.name}: directory {shown(name)} with data")
        return Entry(name, kind, size, overrides.get("linkpath", header.linkname), start)


@dataclass(frozen=True)
class _Header:
    name: str
    flag: bytes
    kind: str
    size: int
    linkname: str


def _text(raw: bytes) -> str:
    """A name as text; bytes that are not UTF-8 become U+FFFD, which no plain name has."""
    return raw.decode("utf-8", "replace")


def _field(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _number(raw: bytes, what: str, archive: str) -> int:
    """An octal field, or GNU base-256 (first byte 0x80; 0xff: negative, refused)."""
    if raw[:1] == b"\x80":
        return int.from_bytes(raw[1:], "big")
    if raw[:1] == b"\xff":
        raise CorruptArchiveError(f"{archive}: negative {what} in a header")
    text = _field(raw).strip(b" ")
    if not text:
        return 0
    if text.strip(b"01234567"):
        raise CorruptArchiveError(f"{archive}: {what} field is not an octal number")
    return int(text, 8)


def _parse_header(block: bytes, archive: str, offset: int) -> _Header:
    if block[257:262] != b"ustar":
        raise CorruptArchiveError(f"{archive}: not a tar archive (no ustar header at {offset})")
    stored = _number(block[148:156], "checksum", archive)
    unsigned = sum(block[:148]) + sum(block[156:]) + 8 * 0x20
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b >= 0x80)
    if stored not in (unsigned, signed):
        raise CorruptArchiveError(f"{archive}: header checksum mismatch at offset {offset}")
    flag = block[156:157]
    name = _field(block[0:100])
    if block[257:263] == b"ustar\0":  # POSIX ustar: a name may be split into a prefix
        prefix = _field(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    kind = "file" if flag in _FILE_FLAGS else _KINDS.get(flag, "other")
    return _Header(
        name=_text(name),
        flag=flag,
        kind=kind,
        size=_number(block[124:136], "size", archive),
        linkname=_text(_field(block[157:257])),
    )


def _pax_records(data: bytes, archive: str) -> dict[str, str]:
    """``"<length> <key>=<value>\\n"`` records; the length counts the whole record."""
    found: dict[str, str] = {}
    at = 0
    while at < len(data):
        if data[at:].strip(b"\0") == b"":
            break  # some writers pad the data with NULs
        space = data.find(b" ", at, at + 12)
        digits = data[at:space] if space > at else b""
        if not digits.isdigit():
            raise CorruptArchiveError(f"{archive}: malformed PAX record at {at}")
        end = at + int(digits)
        record = data[space + 1 : end]
        if end > len(data) or end <= space + 1 or not record.endswith(b"\n"):
            raise CorruptArchiveError(f"{archive}: malformed PAX record at {at}")
        key, equals, value = record[:-1].partition(b"=")
        if not equals or not key:
            raise CorruptArchiveError(f"{archive}: malformed PAX record at {at}")
        found[_text(key)] = _text(value)
        at = end
    return found
