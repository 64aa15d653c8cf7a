"""Hostile update files: refused with a clear OTA error, in bounded memory, nothing left.

The attack of issue 19: an unsigned 1.5 MB .tgz whose first header is a PAX extension
claiming 1.5 GB made verification read it all (3.2 GB RSS) before any signature was
looked at. Here the same shapes at 64 MiB, which is enough to see a reader that holds
an extension header in memory, and cheap when it does not. tools/hostile/ota.py runs
the full-size ones through the command line; tests/corpus/ota keeps small copies.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.cli import main as appliance_main
from ota import errors
from ota.agent import Agent
from ota.compat import Device
from ota.download import fetch
from ota.errors import (
    ArchiveLimitError,
    BadSignatureError,
    CorruptArchiveError,
    DownloadError,
    ExtraFileError,
    HashMismatchError,
    UnknownKeyError,
    UnsafePathError,
    UpdateError,
)
from ota.health import hash_gate
from ota.signing import verify
from tests.fuzz import corpus
from tests.ota.helpers import BUNDLE, device_snapshot, read_members
from tools.hostile.ota import (
    BLOCK,
    END,
    UNSIGNED_ERRORS,
    extension_bomb,
    gzip_with_run,
    member,
    member_bomb,
    pax_record,
    tar_header,
)

CLAIM = 64 << 20
PEAK_LIMIT = 8 << 20  # Python allocations while refusing one file, in bytes


@contextmanager
def peak_allocations() -> Iterator[Callable[[], int]]:
    """Peak bytes allocated by Python inside the block (the callable gives it after)."""
    peak = [0]
    tracemalloc.start()
    try:
        yield lambda: peak[0]
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _refused(path: Path, trusted: list, error: type[Exception], match: str | None = None) -> str:
    """Verify ``path`` into a fresh directory: it must raise exactly ``error``, allocate
    little, leave nothing behind; returns the message."""
    extract = path.parent / "out" / BUNDLE
    extract.parent.mkdir(exist_ok=True)
    work = path.parent / "work"
    work.mkdir(exist_ok=True)
    with peak_allocations() as peak, pytest.raises(error, match=match) as caught:
        verify(path, trusted, extract_to=extract, work_dir=work)
    assert type(caught.value) is error
    assert peak() < PEAK_LIMIT, f"{peak()} bytes allocated to refuse {path.name}"
    assert not extract.exists() and list(work.iterdir()) == []
    message = str(caught.value)
    assert len(message) < 400, "a hostile name must not be echoed back whole"
    return message


@pytest.mark.parametrize("kind", [b"x", b"L", b"K"], ids=["pax", "gnu-longname", "gnu-longlink"])
def test_a_huge_extension_header_is_refused_before_it_is_read(
    kind: bytes, tmp_path: Path, trusted: list
) -> None:
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(extension_bomb(kind, CLAIM))
    _refused(bomb, trusted, ArchiveLimitError, "extension header at offset 0 claims 67108864")


@pytest.fixture(scope="module")
def signature_member(update_v2: Path) -> bytes:
    """The real signature member of update_v2 (header, data, padding)."""
    info, data = read_members(update_v2)[0]
    assert info.name == "signature" and data is not None
    return member("signature", data)


def _after_signature(kind: str, signature: bytes) -> bytes:
    """What an attacker holding one genuinely signed update can append to it."""
    if kind == "declared member, gzip bomb":
        return member_bomb(signature, f"{BUNDLE}/reference.npz", CLAIM)
    if kind == "declared member claims 2^80":
        return signature + tar_header(f"{BUNDLE}/reference.npz", 1 << 80) + END
    if kind == "undeclared member claims 2^80":
        return signature + tar_header(f"{BUNDLE}/extra.onnx", 1 << 80) + END
    if kind == "PAX bomb":
        return extension_bomb(b"x", CLAIM, before=signature)
    if kind == "directory entries forever":
        directory = tar_header(BUNDLE, 0, b"5")
        return gzip_with_run(signature, b"\0", 0, directory * 2 + END)
    if kind == "hostile name":
        name = f"{BUNDLE}/" + "a" * 3000
        return signature + member("././@LongLink", name.encode(), b"L") + member("x", b"x") + END
    raise AssertionError(kind)


AFTER_SIGNATURE = {
    "declared member, gzip bomb": (HashMismatchError, "67108864 bytes, the signed statement"),
    "declared member claims 2^80": (HashMismatchError, "the signed statement says"),
    "undeclared member claims 2^80": (ExtraFileError, "not in the signed file list"),
    "PAX bomb": (ArchiveLimitError, "PAX extension header at offset 1536"),
    "directory entries forever": (UnsafePathError, "duplicate directory entry"),
    "hostile name": (UnsafePathError, "is not a plain file name"),
}


@pytest.mark.parametrize("kind", sorted(AFTER_SIGNATURE))
def test_a_real_signature_does_not_buy_unbounded_reads(
    kind: str, signature_member: bytes, tmp_path: Path, trusted: list
) -> None:
    error, match = AFTER_SIGNATURE[kind]
    path = tmp_path / "update.tgz"
    path.write_bytes(_after_signature(kind, signature_member))
    _refused(path, trusted, error, match)


def test_the_most_headers_a_member_may_have_fit_the_signed_budget(
    update_v2: Path, tmp_path: Path, trusted: list
) -> None:
    """Every member with three full-size extension headers still verifies: the limit on
    the whole stream is a backstop, never tighter than the per-header limits."""
    comment = member("./PaxHeaders/x", pax_record("comment", b"c" * 4000), b"x")
    parts = []
    for info, data in read_members(update_v2):
        name = info.name.encode()
        extensions = comment + member("././@LongLink", name, b"L") + comment
        body = member(info.name, data) if data is not None else tar_header(info.name, 0, b"5")
        parts.append(extensions + body)
    path = tmp_path / "padded.tar"
    path.write_bytes(b"".join(parts) + END)
    assert verify(path, trusted, work_dir=tmp_path).version == "0.10.21-12"


def test_a_signature_nested_deeper_than_the_parser_is_malformed(
    tmp_path: Path, trusted: list
) -> None:
    path = tmp_path / "deep.tar"
    path.write_bytes(member("signature", b"[" * 200_000) + END)
    _refused(path, trusted, BadSignatureError, "nested too deep")


def test_a_long_key_id_is_not_echoed_back(tmp_path: Path, trusted: list) -> None:
    doc = b'{"format":1,"algorithm":"ed25519","statement":{},"signature":"","key_id":"%s"}'
    path = tmp_path / "kid.tar"
    path.write_bytes(member("signature", doc % (b"k" * 500_000)) + END)
    assert "500000 characters" in _refused(path, trusted, UnknownKeyError)


def test_an_oversized_file_is_refused_before_it_is_opened_for_reading(
    tmp_path: Path, trusted: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ota.archive.MAX_ARCHIVE_BYTES", 1000)
    path = tmp_path / "big.tar"
    path.write_bytes(b"\0" * 1001)
    _refused(path, trusted, ArchiveLimitError, "an update is at most 1000")


def test_a_bomb_refused_by_the_agent_changes_nothing_on_the_device(
    ota_root: Path, trusted: list, device: Device, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(extension_bomb(b"x", CLAIM))
    before = device_snapshot(ota_root)
    with peak_allocations() as peak:
        status = Agent(ota_root, trusted, device, hash_gate).install(str(bomb))
    assert peak() < PEAK_LIMIT + (2 << 20)  # + the download's copy buffers
    job = status["job"]
    assert (job["result"], job["error"]) == ("failed", "ArchiveLimitError")
    assert device_snapshot(ota_root) == before
    assert list((ota_root / "downloads").iterdir()) == []
    assert not (ota_root / "tmp").exists() or list((ota_root / "tmp").iterdir()) == []


def test_a_local_file_over_the_limit_is_not_copied(tmp_path: Path) -> None:
    big = tmp_path / "big.update"
    big.write_bytes(b"\0" * 5000)
    with pytest.raises(DownloadError, match="5000 bytes is more than 4096") as caught:
        fetch(str(big), tmp_path / "job.partial", max_bytes=4096)
    assert not caught.value.retryable
    assert not (tmp_path / "job.partial").exists()


def test_the_command_line_names_the_refusal(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.tgz"
    bomb.write_bytes(extension_bomb(b"L", CLAIM))
    rc = appliance_main(["ota", "verify", str(bomb), "--key", str(keys["public"])])
    err = capsys.readouterr().err
    assert rc == 1
    assert "ArchiveLimitError: bomb.tgz: GNU long-name extension header" in err


def test_the_corpus_names_every_unsigned_input_of_the_hostile_tool() -> None:
    kept = {p.name.split("--")[0] for p in corpus("ota")}
    assert set(UNSIGNED_ERRORS) <= kept


@pytest.mark.parametrize("path", corpus("ota"), ids=lambda p: p.name)
def test_corpus_input_is_refused_as_recorded(path: Path, trusted: list, tmp_path: Path) -> None:
    """Each kept input (``<what>--<ErrorClass>.<ext>``) still raises that error."""
    error = getattr(errors, path.name.split("--")[1].split(".")[0])
    assert issubclass(error, UpdateError)
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    _refused(copy, trusted, error)


def test_bytes_after_the_end_of_the_archive_are_never_inflated(
    update_v2: Path, tmp_path: Path, trusted: list
) -> None:
    """tar's end marker ends the read: a bomb behind it costs nothing."""
    plain = update_v2.read_bytes()
    path = tmp_path / "tail.tgz"
    path.write_bytes(gzip_with_run(plain, b"\0", CLAIM))
    with peak_allocations() as peak:
        assert verify(path, trusted, work_dir=tmp_path).version == "0.10.21-12"
    assert peak() < PEAK_LIMIT


def test_a_truncated_extension_header_is_corrupt(tmp_path: Path, trusted: list) -> None:
    path = tmp_path / "cut.tar"
    path.write_bytes(tar_header("././@LongLink", 1000, b"L") + b"a" * BLOCK)
    _refused(path, trusted, CorruptArchiveError, "truncated")
