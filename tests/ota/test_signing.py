"""Signed updates: a good one verifies; every kind of tampering is refused, by reason."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ota import signing
from ota.errors import (
    BadSignatureError,
    CorruptArchiveError,
    ExtraFileError,
    HashMismatchError,
    ManifestInvalidError,
    MissingFileError,
    UnknownKeyError,
    UnsafePathError,
)
from ota.signing import keygen, load_public_key, sign, verify
from tests.ota.helpers import BUNDLE, Member, file_member, make_bundle, rewrite


def _signature(members: list[Member]) -> dict:
    assert members[0][0].name == "signature"
    data = members[0][1]
    assert data is not None
    return json.loads(data)


def _with_signature(members: list[Member], doc: dict) -> list[Member]:
    return [file_member("signature", json.dumps(doc).encode()), *members[1:]]


def test_good_update_verifies_and_lists_every_file(update_v2: Path, trusted: list) -> None:
    got = verify(update_v2, trusted)
    assert (got.name, got.version, got.boards) == (BUNDLE, "0.10.21-12", None)
    assert got.key_id == signing.key_id(trusted[0])
    assert set(got.files) == {
        "manifest.json",
        "face_detection.fp32.onnx",
        "face_detection.int8.onnx",
        "reference.npz",
    }
    assert got.manifest["version"] == "0.10.21-12"


def test_signature_covers_a_canonical_statement(update_v2: Path, trusted: list) -> None:
    with tarfile.open(update_v2) as tar:
        members = tar.getnames()
    assert members[0] == "signature"  # first, so a truncated archive loses files, not it
    doc = json.loads(_read(update_v2, "signature"))
    statement = doc["statement"]
    raw = base64.b64decode(doc["signature"])
    trusted[0].verify(raw, signing.DOMAIN + signing.canonical(statement))  # raises if not
    manifest = _read(update_v2, f"{BUNDLE}/manifest.json")
    assert statement["files"]["manifest.json"] == {
        "sha256": hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
    }


def _read(update: Path, name: str) -> bytes:
    with tarfile.open(update) as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


def test_gzip_and_plain_both_verify_and_signing_is_reproducible(
    tmp_path: Path, private_key: Ed25519PrivateKey, trusted: list
) -> None:
    bundle = make_bundle(tmp_path, "0.10.21-17")
    first = sign(bundle, private_key, tmp_path / "a.bundle")
    again = sign(bundle, private_key, tmp_path / "b.bundle")
    assert first.read_bytes() == again.read_bytes()
    packed = sign(bundle, private_key, tmp_path / "c.bundle.gz")
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert verify(packed, trusted).version == "0.10.21-17"


def test_keygen_writes_private_key_0600_and_never_overwrites(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    load_public_key(public)
    with pytest.raises(FileExistsError):
        keygen(tmp_path / "k")


def test_a_broken_bundle_is_never_signed(tmp_path: Path, private_key: Ed25519PrivateKey) -> None:
    bundle = make_bundle(tmp_path, "0.10.21-13")
    (bundle / "reference.npz").write_bytes(b"changed after hashing")
    with pytest.raises(ManifestInvalidError, match="refusing to sign"):
        sign(bundle, private_key, tmp_path / "x.bundle")
    assert not (tmp_path / "x.bundle").exists()


def _flip_signature_byte(members: list[Member]) -> list[Member]:
    doc = _signature(members)
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[5] ^= 0x01
    doc["signature"] = base64.b64encode(bytes(raw)).decode()
    return _with_signature(members, doc)


def _edit_signed_version(members: list[Member]) -> list[Member]:
    doc = _signature(members)
    doc["statement"]["version"] = "9.9.9"
    return _with_signature(members, doc)


def _edit_signed_hash(members: list[Member]) -> list[Member]:
    doc = _signature(members)
    doc["statement"]["files"]["reference.npz"]["sha256"] = "0" * 64
    return _with_signature(members, doc)


def _flip_model_byte(members: list[Member]) -> list[Member]:
    out = []
    for info, data in members:
        if info.name.endswith(".int8.onnx") and data is not None:
            changed = bytearray(data)
            changed[len(changed) // 2] ^= 0xFF
            data = bytes(changed)
        out.append((info, data))
    return out


def _truncate_model(members: list[Member]) -> list[Member]:
    return [
        (info, data[:-100] if info.name.endswith(".fp32.onnx") and data else data)
        for info, data in members
    ]


def _add_file(members: list[Member]) -> list[Member]:
    return [*members, file_member(f"{BUNDLE}/extra.onnx", b"not signed")]


def _drop_file(members: list[Member]) -> list[Member]:
    return [(i, d) for i, d in members if not i.name.endswith("reference.npz")]


def _drop_signature(members: list[Member]) -> list[Member]:
    return members[1:]


def _move_signature_last(members: list[Member]) -> list[Member]:
    return [*members[1:], members[0]]


def _link(name: str, kind: bytes, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


TAMPERING = {
    "flipped signature byte": (_flip_signature_byte, BadSignatureError),
    "signed version edited": (_edit_signed_version, BadSignatureError),
    "signed hash edited": (_edit_signed_hash, BadSignatureError),
    "no signature": (_drop_signature, BadSignatureError),
    "signature not first": (_move_signature_last, BadSignatureError),
    "model byte flipped": (_flip_model_byte, HashMismatchError),
    "model truncated": (_truncate_model, HashMismatchError),
    "extra file": (_add_file, ExtraFileError),
    "missing file": (_drop_file, MissingFileError),
    "dot-dot path": (lambda m: [*m, file_member("../evil", b"x")], UnsafePathError),
    "dot-dot inside": (
        lambda m: [*m, file_member(f"{BUNDLE}/../../evil", b"x")],
        UnsafePathError,
    ),
    "absolute path": (lambda m: [*m, file_member("/tmp/ota-evil", b"x")], UnsafePathError),
    "symlink": (
        lambda m: [*m, _link(f"{BUNDLE}/link", tarfile.SYMTYPE, "/etc/passwd")],
        UnsafePathError,
    ),
    "hard link": (
        lambda m: [*m, _link(f"{BUNDLE}/hard", tarfile.LNKTYPE, "/etc/passwd")],
        UnsafePathError,
    ),
    "nested path": (lambda m: [*m, file_member(f"{BUNDLE}/sub/x", b"x")], UnsafePathError),
    "outside the bundle": (lambda m: [*m, file_member("other/x.onnx", b"x")], ExtraFileError),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_update_is_refused_by_reason(
    case: str, update_v2: Path, trusted: list, tmp_path: Path
) -> None:
    edit, error = TAMPERING[case]
    bad = rewrite(update_v2, tmp_path / "bad.bundle", edit)
    extract = tmp_path / "out" / BUNDLE
    extract.parent.mkdir()
    with pytest.raises(error):
        verify(bad, trusted, extract_to=extract)
    assert not extract.exists()  # nothing left behind
    assert not (tmp_path / "evil").exists() and not Path("/tmp/ota-evil").exists()


def test_unknown_key_is_refused(tmp_path: Path, keys: dict[str, Path], trusted: list) -> None:
    bundle = make_bundle(tmp_path, "0.10.21-14")
    foreign = sign(bundle, keys["stranger_private"], tmp_path / "foreign.bundle")
    with pytest.raises(UnknownKeyError, match="does not trust"):
        verify(foreign, trusted)
    assert verify(foreign, [load_public_key(keys["stranger_public"])]).version == "0.10.21-14"


def test_claiming_a_trusted_key_id_does_not_help(
    tmp_path: Path, keys: dict[str, Path], trusted: list
) -> None:
    bundle = make_bundle(tmp_path, "0.10.21-14")
    foreign = sign(bundle, keys["stranger_private"], tmp_path / "foreign.bundle")

    def claim(members: list[Member]) -> list[Member]:
        doc = _signature(members)
        doc["key_id"] = signing.key_id(trusted[0])
        return _with_signature(members, doc)

    with pytest.raises(BadSignatureError):
        verify(rewrite(foreign, tmp_path / "claimed.bundle", claim), trusted)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_archive_is_refused(
    keep: float, update_v2: Path, trusted: list, tmp_path: Path
) -> None:
    data = update_v2.read_bytes()
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises((CorruptArchiveError, MissingFileError)):
        verify(cut, trusted)


def test_truncated_gzip_and_garbage_are_corrupt(
    tmp_path: Path, private_key: Ed25519PrivateKey, trusted: list
) -> None:
    packed = sign(make_bundle(tmp_path, "0.10.21-15"), private_key, tmp_path / "u.bundle.gz")
    cut = tmp_path / "cut.bundle.gz"
    cut.write_bytes(packed.read_bytes()[:-1000])
    with pytest.raises(CorruptArchiveError):
        verify(cut, trusted)
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"\x00not a tar archive" * 100)
    with pytest.raises(CorruptArchiveError):
        verify(garbage, trusted)


def test_signed_but_invalid_manifest_is_refused(
    tmp_path: Path, private_key: Ed25519PrivateKey, trusted: list, update_v2: Path
) -> None:
    """A correctly signed statement over a manifest the bundle format refuses."""
    manifest = json.loads(_read(update_v2, f"{BUNDLE}/manifest.json"))
    manifest["surprise"] = True
    bad_manifest = json.dumps(manifest).encode()

    def resign(members: list[Member]) -> list[Member]:
        doc = _signature(members)
        entry = doc["statement"]["files"]["manifest.json"]
        entry["size"] = len(bad_manifest)
        entry["sha256"] = hashlib.sha256(bad_manifest).hexdigest()
        doc["signature"] = base64.b64encode(
            private_key.sign(signing.DOMAIN + signing.canonical(doc["statement"]))
        ).decode()
        swapped = [(i, bad_manifest if i.name.endswith("manifest.json") else d) for i, d in members]
        return _with_signature(swapped, doc)

    with pytest.raises(ManifestInvalidError, match="surprise"):
        verify(rewrite(update_v2, tmp_path / "m.bundle", resign), trusted)
