"""Signed updates: ed25519 over a statement that pins every byte of a bundle.

What is signed (exactly): the bytes ``DOMAIN + canonical(statement)`` where::

    statement = {"format": 1, "name": <bundle name>, "version": <bundle version>,
                 "boards": [<board profile names>] or null (any board),
                 "files": {<file name>: {"sha256": <hex>, "size": <bytes>}, ...}}

lists every file of the bundle directory, ``manifest.json`` included, and
``canonical`` is JSON with sorted keys, no whitespace, ASCII only. Swapping, adding,
removing or truncating any file, or editing the manifest (which carries the bundle's own
hashes, compatibility and version), changes a hash or the file set and breaks the
match; changing the statement breaks the signature. The domain prefix keeps this
signature from being valid for anything else signed with the same key.

The archive's ``signature`` member is JSON: ``{"format": 1, "algorithm": "ed25519",
"key_id", "statement", "signature": <base64>}``. ``key_id`` is the first 16 hex digits
of the sha256 of the raw 32-byte public key; it only picks the key to try.

Keys are PEM files: the private key PKCS#8 unencrypted (mode 0600), the public key
SubjectPublicKeyInfo; ``openssl pkey`` reads both. The device trusts the ``*.pub``
files in its keys directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appliance.runtime.bundle import (
    MANIFEST,
    BundleError,
    load_manifest,
    load_verified,
    sha256_file,
    verify_bundle,
)
from ota import fsio
from ota.archive import (
    SIGNATURE,
    SIGNATURE_LIMIT,
    is_plain_name,
    member_parts,
    open_update,
    signed_budget,
    write_archive,
)
from ota.errors import (
    BadSignatureError,
    ExtraFileError,
    HashMismatchError,
    KeyFileError,
    ManifestInvalidError,
    MissingFileError,
    UnknownKeyError,
    UnsafePathError,
)
from ota.tarstream import TarStream, shown

log = logging.getLogger(__name__)

FORMAT = 1
DOMAIN = b"appliance-ota-bundle-signature-v1\n"
STATEMENT_KEYS = {"format", "name", "version", "boards", "files"}
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class VerifiedUpdate:
    """An update whose signature, file set and hashes all check out."""

    name: str
    version: str
    boards: tuple[str, ...] | None  # None: any board
    files: dict[str, dict[str, Any]]  # file name -> {"sha256", "size"}
    key_id: str
    manifest: dict[str, Any]


# --- keys -------------------------------------------------------------------------------


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(out_dir: Path, name: str = "ota-signing") -> tuple[Path, Path]:
    """Write ``<name>.key`` (private, 0600) and ``<name>.pub``; never overwrites."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an ed25519 key")
    return key


def load_public_keys(paths: Iterable[Path]) -> list[Ed25519PublicKey]:
    """Every key named; a directory contributes each ``*.pub`` file in it."""
    keys = []
    for path in paths:
        path = Path(path)
        files = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        keys += [load_public_key(f) for f in files]
    return keys


# --- the statement ----------------------------------------------------------------------


def canonical(statement: dict[str, Any]) -> bytes:
    text = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def statement_problems(s: Any) -> list[str]:
    if not isinstance(s, dict):
        return ["statement is not an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(s) - STATEMENT_KEYS)]
    problems += [f"missing key {k!r}" for k in sorted(STATEMENT_KEYS - set(s))]
    if problems:
        return problems
    if s["format"] != FORMAT:
        problems.append(f"format {s['format']!r} is not supported")
    for key in ("name", "version"):
        if not isinstance(s[key], str) or not is_plain_name(s[key]):
            problems.append(f"{key} {s[key]!r} is not a plain name")
    boards = s["boards"]
    if boards is not None and not (
        isinstance(boards, list) and boards and all(isinstance(b, str) and b for b in boards)
    ):
        problems.append("boards must be null or a non-empty list of names")
    files = s["files"]
    if not isinstance(files, dict) or MANIFEST not in files:
        return [*problems, f"files must be an object listing {MANIFEST}"]
    for name, entry in files.items():
        ok = (
            is_plain_name(name)
            and isinstance(entry, dict)
            and set(entry) == {"sha256", "size"}
            and isinstance(entry["sha256"], str)
            and SHA256_HEX.fullmatch(entry["sha256"]) is not None
            and type(entry["size"]) is int
            and entry["size"] >= 0
        )
        if not ok:
            problems.append(f"files[{name!r}] is malformed")
    return problems


def sign(
    bundle_dir: Path,
    private_key: Ed25519PrivateKey | Path,
    out_file: Path,
    boards: Sequence[str] | None = None,
) -> Path:
    """Write a signed update of ``bundle_dir`` to ``out_file`` (.gz/.tgz: compressed).

    The bundle must verify first (``verify_bundle``): a broken bundle is never signed.
    ``boards``: the board profile names it is meant for (default: any board).
    """
    bundle_dir, out_file = Path(bundle_dir), Path(out_file)
    key = (
        private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    )
    try:
        manifest = load_verified(bundle_dir)
    except BundleError as exc:
        raise ManifestInvalidError(f"refusing to sign: {exc}") from None
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(bundle_dir.iterdir()):
        if not path.is_file() or path.is_symlink():
            raise ManifestInvalidError(f"refusing to sign: {path} is not a regular file")
        files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    statement = {
        "format": FORMAT,
        "name": manifest["name"],
        "version": manifest["version"],
        "boards": sorted(set(boards)) if boards else None,
        "files": files,
    }
    problems = statement_problems(statement)
    if problems:
        raise ManifestInvalidError(f"refusing to sign {bundle_dir}: " + "; ".join(problems))
    document = {
        "format": FORMAT,
        "algorithm": "ed25519",
        "key_id": key_id(key),
        "statement": statement,
        "signature": base64.b64encode(key.sign(DOMAIN + canonical(statement))).decode(),
    }
    signature = json.dumps(document, indent=2, sort_keys=True).encode("ascii")
    write_archive(out_file, signature, manifest["name"], bundle_dir, sorted(files))
    log.info(
        "signed %s %s with key %s -> %s",
        statement["name"],
        statement["version"],
        document["key_id"],
        out_file,
    )
    return out_file


# --- verification -----------------------------------------------------------------------


def _check_signature(
    data: bytes, trusted: dict[str, Ed25519PublicKey]
) -> tuple[dict[str, Any], str]:
    """The signed statement and the key id, or the reason it cannot be trusted."""
    try:
        doc = json.loads(data.decode("ascii"))
        kid, statement = doc["key_id"], doc["statement"]
        raw = base64.b64decode(doc["signature"], validate=True)
        if doc["format"] != FORMAT or doc["algorithm"] != "ed25519" or not isinstance(kid, str):
            raise ValueError("unsupported format or algorithm")
        message = DOMAIN + canonical(statement)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadSignatureError(f"malformed signature file: {str(exc)[:200]}") from None
    except RecursionError:  # JSON nested deeper than the interpreter's stack
        raise BadSignatureError("malformed signature file: nested too deep") from None
    if kid not in trusted:
        named = kid if KEY_ID.fullmatch(kid) else shown(kid)
        raise UnknownKeyError(f"signed by key {named}, which this device does not trust")
    try:
        trusted[kid].verify(raw, message)
    except (InvalidSignature, TypeError, ValueError):
        raise BadSignatureError(f"signature does not match (key {kid})") from None
    problems = statement_problems(statement)
    if problems:
        raise ManifestInvalidError("signed statement: " + "; ".join(problems))
    return statement, kid


def _read_signature(
    tar: TarStream, trusted: dict[str, Ed25519PublicKey]
) -> tuple[dict[str, Any], str]:
    """The first member, which must be the signature, checked; nothing after it is read."""
    first = tar.next_entry()
    if first is None or member_parts(first) != (SIGNATURE,) or not first.is_file():
        raise BadSignatureError("unsigned: the archive does not start with a signature")
    if first.size > SIGNATURE_LIMIT:
        raise BadSignatureError(f"signature member is too large ({first.size} bytes)")
    return _check_signature(tar.read(first.size), trusted)


def _extract(
    update_file: Path, trusted: dict[str, Ed25519PublicKey], dest: Path, durable: bool
) -> tuple[dict[str, Any], str]:
    """One pass: signature first, then each file hashed (and written) against it.

    Every member's header is checked against the signed statement before its data is
    read, and the stream as a whole may not outgrow what the statement accounts for.
    """
    with open_update(update_file) as tar:
        statement, kid = _read_signature(tar, trusted)
        name, files = statement["name"], statement["files"]
        tar.limit = tar.position + signed_budget(files)
        seen: set[str] = set()
        seen_dir = False
        while (member := tar.next_entry()) is not None:
            parts = member_parts(member)
            if parts[0] != name:
                raise ExtraFileError(f"{shown(member.name)}: outside bundle {name!r}")
            if len(parts) == 1:
                if not member.is_dir():
                    raise ExtraFileError(f"{shown(member.name)}: not part of the bundle")
                if seen_dir:
                    raise UnsafePathError(f"{shown(member.name)}: duplicate directory entry")
                seen_dir = True
                continue
            file_name = parts[1]
            if file_name not in files:
                raise ExtraFileError(f"{shown(member.name)}: not in the signed file list")
            if file_name in seen or not member.is_file():
                raise UnsafePathError(f"{shown(member.name)}: duplicate or not a regular file")
            seen.add(file_name)
            want = files[file_name]
            if member.size != want["size"]:
                raise HashMismatchError(
                    f"{file_name}: {member.size} bytes, the signed statement says {want['size']}"
                )
            digest = hashlib.sha256()
            got = fsio.write_stream(
                tar, dest / file_name, hasher=digest, limit=want["size"], durable=durable
            )
            if got != want["size"] or digest.hexdigest() != want["sha256"]:
                raise HashMismatchError(f"{file_name}: sha256 differs from the signed statement")
        missing = sorted(set(files) - seen)
        if missing:
            raise MissingFileError(f"signed files missing from the archive: {missing}")
    return statement, kid


def verify(
    update_file: Path,
    public_keys: Iterable[Ed25519PublicKey],
    extract_to: Path | None = None,
    work_dir: Path | None = None,
) -> VerifiedUpdate:
    """Check an update completely; raise the UpdateError subclass that says why not.

    The bundle is unpacked while it is read: into ``extract_to`` (created here, must not
    exist; removed again on failure; files fsync'd) or into a temporary directory under
    ``work_dir`` that is removed afterwards. Either way it then passes the same
    ``verify_bundle`` the daemon runs before loading a model.
    """
    update_file = Path(update_file)
    trusted = {key_id(k): k for k in public_keys}
    if extract_to is not None:
        Path(extract_to).mkdir()
        try:
            return _verify_into(update_file, trusted, Path(extract_to), durable=True)
        except BaseException:
            fsio.remove_tree(Path(extract_to))
            raise
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="ota-verify-") as tmp:
        dest = Path(tmp) / "bundle"
        dest.mkdir()
        return _verify_into(update_file, trusted, dest, durable=False)


def _verify_into(
    update_file: Path, trusted: dict[str, Ed25519PublicKey], dest: Path, durable: bool
) -> VerifiedUpdate:
    statement, kid = _extract(update_file, trusted, dest, durable)
    try:
        manifest = load_manifest(dest)
    except BundleError as exc:
        raise ManifestInvalidError(str(exc).replace(str(dest), statement["name"])) from None
    if (manifest["name"], manifest["version"]) != (statement["name"], statement["version"]):
        raise ManifestInvalidError(
            f"manifest says {manifest['name']} {manifest['version']}, the signed statement "
            f"{statement['name']} {statement['version']}"
        )
    problems = [p.removeprefix(f"{dest.name}: ") for p in verify_bundle(dest)]
    if problems:
        raise ManifestInvalidError(f"{statement['name']}: " + "; ".join(problems))
    boards = statement["boards"]
    return VerifiedUpdate(
        name=statement["name"],
        version=statement["version"],
        boards=tuple(boards) if boards is not None else None,
        files=statement["files"],
        key_id=kid,
        manifest=manifest,
    )
