"""Fuzzing update files: whatever the bytes, verification ends in a documented OTA
error or a verified update, in bounded memory, leaving nothing on disk.

Three sources of input: arbitrary bytes; a small genuinely signed update, mutated (bits
flipped, cut short, header fields rewritten with or without a fixed checksum, extension
headers with huge claims inserted), plain or gzip'd; and tar streams put together
member by member, optionally behind the genuine signature so that the reader gets past
it. Budgets come from tests/fuzz.py (``make fuzz`` for the long run).
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from ota.errors import (
    ArchiveLimitError,
    BadSignatureError,
    CorruptArchiveError,
    ExtraFileError,
    HashMismatchError,
    ManifestInvalidError,
    MissingFileError,
    UnknownKeyError,
    UnsafePathError,
    UpdateError,
)
from ota.signing import keygen, load_public_key, sign, verify
from tools.hostile.ota import (
    BLOCK,
    BUNDLE,
    END,
    GB_1_5,
    make_tiny_bundle,
    member,
    pax_record,
    tar_header,
)

pytestmark = pytest.mark.fuzz

DOCUMENTED = {
    ArchiveLimitError,
    BadSignatureError,
    CorruptArchiveError,
    ExtraFileError,
    HashMismatchError,
    ManifestInvalidError,
    MissingFileError,
    UnknownKeyError,
    UnsafePathError,
}
PEAK_LIMIT = 8 << 20  # bytes Python may allocate for one small input, whatever it claims
MESSAGE_LIMIT = 600


@dataclass(frozen=True)
class Material:
    """Built once per module: a small signed update and where its headers are."""

    work: Path
    trusted: list
    plain: bytes
    gzipped: bytes
    headers: list[int]  # offsets of the plain archive's member headers
    signature: bytes  # the genuine signature member, header and padding included
    files: dict[str, bytes]  # the bundle's files by member name


@pytest.fixture(scope="module")
def material() -> Iterator[Material]:
    work = Path(tempfile.mkdtemp(prefix="ota-fuzz-"))
    try:
        private, public = keygen(work / "keys")
        bundle = make_tiny_bundle(work, "0.10.21-77")
        plain = sign(bundle, private, work / "u.bundle").read_bytes()
        gzipped = sign(bundle, private, work / "u.bundle.gz").read_bytes()
        with tarfile.open(work / "u.bundle") as tar:
            offsets = [m.offset for m in tar.getmembers()]
        sig_size = int(plain[124:136].split(b"\0")[0], 8)
        files = {f"{BUNDLE}/{p.name}": p.read_bytes() for p in sorted(bundle.iterdir())}
        scratch = work / "scratch"
        scratch.mkdir()
        yield Material(
            work=scratch,
            trusted=[load_public_key(public)],
            plain=plain,
            gzipped=gzipped,
            headers=offsets,
            signature=plain[: BLOCK + sig_size + (-sig_size % BLOCK)],
            files=files,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(material: Material, data: bytes) -> None:
    """The property: a documented refusal or a verified update; bounded; nothing left."""
    path = material.work / "input.update"
    path.write_bytes(data)
    tmp = material.work / "tmp"
    tmp.mkdir(exist_ok=True)
    tracemalloc.start()
    try:
        verify(path, material.trusted, work_dir=tmp)
    except UpdateError as exc:
        assert type(exc) in DOCUMENTED, f"undocumented {type(exc).__name__}: {exc}"
        assert len(str(exc)) < MESSAGE_LIMIT, str(exc)[:MESSAGE_LIMIT]
        event(type(exc).__name__)
    else:
        event("verified")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak} bytes allocated for a {len(data)}-byte input"
    assert list(tmp.iterdir()) == []


# ---- arbitrary bytes -------------------------------------------------------------------

arbitrary = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=2048).map(gzip.compress),
    st.builds(lambda h, rest: h + rest, st.binary(min_size=512, max_size=512), st.binary()),
)


@given(data=arbitrary)
def test_arbitrary_bytes(material: Material, data: bytes) -> None:
    check(material, data)


# ---- a signed update, mutated ----------------------------------------------------------

FIELDS = {  # ustar header fields: offset, width
    "name": (0, 100),
    "mode": (100, 8),
    "size": (124, 12),
    "checksum": (148, 8),
    "typeflag": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 8),
    "prefix": (345, 155),
}
claims = st.one_of(
    st.integers(0, 8192), st.integers(0, 1 << 70), st.sampled_from([GB_1_5, 4096, 4097])
)
kinds = st.sampled_from([b"0", b"\0", b"1", b"2", b"3", b"5", b"6", b"7", b"x", b"g", b"L", b"K"])
kinds |= st.sampled_from([b"S", b"V", b"M", b"N", b"D"])


def size_field(size: int) -> bytes:
    if size < 8**11:
        return b"%011o\0" % size
    return b"\x80" + (size % (1 << 88)).to_bytes(11, "big")


def fix_checksum(raw: bytearray, at: int) -> None:
    raw[at + 148 : at + 156] = b" " * 8
    raw[at + 148 : at + 156] = b"%06o\0 " % sum(raw[at : at + BLOCK])


@st.composite
def header_edit(draw: st.DrawFn, material: Material) -> tuple[int, int, bytes, bool]:
    at = draw(st.sampled_from(material.headers))
    field = draw(st.sampled_from(sorted(FIELDS)))
    offset, width = FIELDS[field]
    if field == "size":
        value = size_field(draw(claims))
    elif field == "typeflag":
        value = draw(kinds)
    else:
        value = draw(st.binary(max_size=width))
    return at + offset, width, value, draw(st.integers(0, 3)) > 0


@st.composite
def extension(draw: st.DrawFn) -> bytes:
    """An extension header claiming anything, with a little data (valid records or not)."""
    kind = draw(st.sampled_from([b"x", b"g", b"L", b"K"]))
    if kind in (b"x", b"g") and draw(st.booleans()):
        key = draw(st.sampled_from(["path", "linkpath", "size", "comment", "GNU.sparse.map"]))
        value = draw(st.sampled_from([b"../evil", b"signature", b"%d" % GB_1_5, b"x" * 300]))
        payload = pax_record(key, value)
    else:
        payload = draw(st.binary(max_size=600))
    claim = draw(st.one_of(st.just(len(payload)), claims))
    return tar_header("././@LongLink", claim, kind) + payload + b"\0" * (-len(payload) % BLOCK)


@st.composite
def mutated_update(draw: st.DrawFn, material: Material) -> bytes:
    raw = bytearray(material.plain)
    for at, width, value, fixed in draw(st.lists(header_edit(material), max_size=3)):
        raw[at : at + width] = value.ljust(width, b"\0")[:width]
        if fixed:  # mostly: a header that fails its checksum goes no further
            fix_checksum(raw, at - at % BLOCK)
    if draw(st.booleans()):
        at = draw(st.sampled_from(material.headers))
        raw[at:at] = draw(extension())
    compress = draw(st.booleans())
    out = bytearray(gzip.compress(bytes(raw), mtime=0) if compress else raw)
    # Flips and cuts are a minority: in a gzip stream nearly all of them end in the CRC.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 3]))):
        position = draw(st.integers(0, len(out) - 1))
        out[position] ^= 1 << draw(st.integers(0, 7))
    if draw(st.integers(0, 3)) == 0:
        del out[draw(st.integers(0, len(out))) :]
    return bytes(out)


@given(data=st.data())
def test_mutated_signed_updates(material: Material, data: st.DataObject) -> None:
    check(material, data.draw(mutated_update(material)))


def test_the_unmutated_update_verifies(material: Material) -> None:
    """The fuzzing starts from updates that are accepted, plain and gzip'd."""
    for data in (material.plain, material.gzipped):
        path = material.work / "good.update"
        path.write_bytes(data)
        assert verify(path, material.trusted).version == "0.10.21-77"


# ---- tar streams put together ----------------------------------------------------------

names = st.one_of(
    st.sampled_from(
        [
            "signature",
            BUNDLE,
            f"{BUNDLE}/",
            f"{BUNDLE}/manifest.json",
            f"{BUNDLE}/reference.npz",
            f"{BUNDLE}/extra.onnx",
            "../evil",
            "/abs",
            f"{BUNDLE}/../x",
            f"{BUNDLE}/sub/x",
            "other/x",
            "",
        ]
    ),
    st.text(max_size=40),
)


@st.composite
def crafted_member(draw: st.DrawFn, material: Material) -> bytes:
    name = draw(names)
    if name in material.files and draw(st.booleans()):
        return member(name, material.files[name])  # a genuine file of the bundle
    kind = draw(kinds)
    claim = draw(claims)
    body = draw(st.binary(max_size=min(claim, 700)))
    head = draw(extension()) if draw(st.integers(0, 3)) == 0 else b""
    raw_name = name.encode("utf-8", "surrogatepass")
    return head + tar_header(raw_name, claim, kind) + body + b"\0" * (-len(body) % BLOCK)


@st.composite
def crafted_stream(draw: st.DrawFn, material: Material) -> bytes:
    signed = draw(st.booleans())
    members = draw(st.lists(crafted_member(material), max_size=5))
    raw = (material.signature if signed else b"") + b"".join(members)
    raw += draw(st.sampled_from([END, b"", b"\0" * BLOCK]))
    return gzip.compress(raw, mtime=0) if draw(st.booleans()) else raw


@given(data=st.data())
def test_crafted_tar_streams(material: Material, data: st.DataObject) -> None:
    check(material, data.draw(crafted_stream(material)))
