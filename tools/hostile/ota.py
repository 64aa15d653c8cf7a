"""Hostile OTA update files, and what ``appliance ota verify|install`` does with them.

``.venv/bin/python -m tools.hostile.ota`` builds the inputs in a temporary directory
(bombs included: a 1.5 GB claim really backed by 1.5 GB of gzip'd name) and hands each
to the real command line in a child process: ``verify``, then ``install`` into a
throw-away OTA root. One line per input and command: the exit status, the error shown,
the child's peak RSS over its RSS just before the command ran (VmHWM minus VmRSS, the
CLI's modules imported beforehand so that only the input's cost counts), and seconds.
Target: every refusal at most 64 MB over idle, in a second or two.

``--source DIR`` runs another checkout's command line (e.g. ``git archive HEAD`` of an
older commit unpacked somewhere) against the same inputs; ``--write-corpus DIR`` writes
the small, key-free reproductions kept in tests/corpus/ota.

The tar headers are written by hand (not with :mod:`tarfile`), because the point is to
write what tarfile would never write: extension headers claiming gigabytes, sizes in
base-256, members that are not what the signed statement says. The tests build their
inputs with the same functions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

BLOCK = 512
_RUN_CHUNK = 1 << 20


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _size_field(size: int) -> bytes:
    """Octal while it fits in 11 digits, else GNU base-256 (how 8 GB+ sizes are written)."""
    if 0 <= size < 8**11:
        return _octal(size, 12)
    return b"\x80" + size.to_bytes(11, "big", signed=True)[-11:]


def tar_header(
    name: str | bytes,
    size: int,
    kind: bytes = b"0",
    *,
    linkname: str | bytes = b"",
    size_field: bytes | None = None,
    magic: bytes = b"ustar\x0000",
) -> bytes:
    """One 512-byte header with a correct checksum; ``size_field`` overrides the size."""
    raw_name = name.encode() if isinstance(name, str) else name
    raw_link = linkname.encode() if isinstance(linkname, str) else linkname
    header = bytearray(BLOCK)
    header[0:100] = raw_name[:100].ljust(100, b"\0")
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = (size_field if size_field is not None else _size_field(size))[:12].ljust(
        12, b"\0"
    )
    header[136:148] = _octal(0, 12)
    header[148:156] = b" " * 8
    header[156:157] = kind
    header[157:257] = raw_link[:100].ljust(100, b"\0")
    header[257:265] = magic[:8].ljust(8, b"\0")
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def member(name: str, data: bytes, kind: bytes = b"0") -> bytes:
    return tar_header(name, len(data), kind) + padded(data)


def pax_record(key: str, value: bytes) -> bytes:
    """``"<length> <key>=<value>\\n"``, the length counting its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


END = b"\0" * (2 * BLOCK)


def gzip_with_run(prefix: bytes, byte: bytes, count: int, suffix: bytes = b"") -> bytes:
    """gzip of ``prefix + byte * count + suffix`` in O(compressed size) memory.

    A run of one byte deflates to the same ~1 KB per MiB every time once the window is
    reset (a full flush), so gigabytes are one compressed chunk repeated: a bomb.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = zlib.crc32(prefix)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", comp.compress(prefix)]
    parts.append(comp.flush(zlib.Z_FULL_FLUSH))
    whole, rest = divmod(count, _RUN_CHUNK)
    if whole:
        chunk = byte * _RUN_CHUNK
        packed = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
        parts += [packed] * whole
        for _ in range(whole):
            crc = zlib.crc32(chunk, crc)
    tail = byte * rest + suffix
    crc = zlib.crc32(tail, crc)
    parts += [comp.compress(tail), comp.flush(zlib.Z_FINISH)]
    total = len(prefix) + count + len(suffix)
    parts.append(
        (crc & 0xFFFFFFFF).to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little")
    )
    return b"".join(parts)


# ---- the hostile inputs ----------------------------------------------------------------

GB_1_5 = 1536 << 20
BUNDLE = "face_detection"
_EXTENSION_NAME = {b"x": "./PaxHeaders/signature", b"L": "././@LongLink", b"K": "././@LongLink"}


def extension_bomb(
    kind: bytes, claim: int, backed: int | None = None, before: bytes = b""
) -> bytes:
    """gzip'd tar: ``before``, then an extension header (PAX ``x``, GNU ``L``/``K``)
    claiming ``claim`` bytes of one long name, then a signature member.

    ``backed``: how many of the claimed bytes are really there (default all, a ~1000:1
    bomb: 1.5 GB claimed and present is a 1.5 MB file); fewer makes a truncated
    archive of a few hundred bytes, which is all a bounded reader ever looks at.
    """
    head = b"%d path=" % claim if kind == b"x" else b""
    run = claim - len(head) - 1
    prefix = before + tar_header(_EXTENSION_NAME[kind], claim, kind) + head
    if backed is not None and backed < claim:
        return gzip_with_run(prefix, b"a", max(0, backed - len(head)))
    suffix = b"\n" if kind == b"x" else b"\0"
    suffix += b"\0" * (-claim % BLOCK) + member("signature", b"{}") + END
    return gzip_with_run(prefix, b"a", run, suffix)


def member_bomb(before: bytes, name: str, claim: int, backed: bool = True) -> bytes:
    """gzip'd ``before`` (e.g. a real signature member), then ``name`` claiming ``claim``
    bytes, of zeros that are really there when ``backed``."""
    header = tar_header(name, claim)
    if not backed:
        return gzip_with_run(before + header, b"\0", 0)
    return gzip_with_run(before + header, b"\0", claim + (-claim % BLOCK), END)


def deep_json_signature(depth: int = 200_000) -> bytes:
    """A signature member nested deeper than Python's JSON parser can recurse."""
    return gzip_with_run(tar_header("signature", depth), b"[", depth, b"\0" * (-depth % BLOCK))


def unsigned_inputs(backed: bool) -> dict[str, bytes]:
    """Inputs that need no key. ``backed``: the claims are really there (bombs of about
    1.5 MB each); otherwise each is a few hundred bytes, for the corpus."""
    small = None if backed else 2048
    huge = 1 << 80
    return {
        "pax-path-claims-1.5G": extension_bomb(b"x", GB_1_5, small),
        "gnu-longname-claims-1.5G": extension_bomb(b"L", GB_1_5, small),
        "gnu-longlink-claims-1.5G": extension_bomb(b"K", GB_1_5, small),
        "signature-claims-1.5G": member_bomb(b"", "signature", GB_1_5, backed),
        "signature-claims-2pow80-base256": tar_header("signature", huge) + END,
        "pax-size-claims-1.5G-for-signature": (
            member("./PaxHeaders/signature", pax_record("size", b"%d" % GB_1_5), b"x")
            + tar_header("signature", 0)
            + END
        ),
        "member-before-signature-claims-1.5G": member_bomb(b"", f"{BUNDLE}/x", GB_1_5, False),
        "pax-global-header-renames": (
            member("pax_global_header", pax_record("path", b"../../etc/passwd"), b"g")
            + member("signature", b"{}")
            + END
        ),
        "deep-json-signature": deep_json_signature(),
    }


# Which OTA error each refuses with (the corpus file names end in it).
UNSIGNED_ERRORS = {
    "pax-path-claims-1.5G": "ArchiveLimitError",
    "gnu-longname-claims-1.5G": "ArchiveLimitError",
    "gnu-longlink-claims-1.5G": "ArchiveLimitError",
    "signature-claims-1.5G": "BadSignatureError",
    "signature-claims-2pow80-base256": "BadSignatureError",
    "pax-size-claims-1.5G-for-signature": "BadSignatureError",
    "member-before-signature-claims-1.5G": "BadSignatureError",
    "pax-global-header-renames": "CorruptArchiveError",
    "deep-json-signature": "BadSignatureError",
}


def _suffix(data: bytes) -> str:
    return ".tgz" if data[:2] == b"\x1f\x8b" else ".tar"


def write_corpus(directory: Path) -> list[Path]:
    """The key-free inputs, small, one file each: ``<name>--<error>.tgz`` (or ``.tar``)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in unsigned_inputs(backed=False).items():
        path = directory / f"{name}--{UNSIGNED_ERRORS[name]}{_suffix(data)}"
        path.write_bytes(data)
        written.append(path)
    return written


def make_tiny_bundle(parent: Path, version: str) -> Path:
    """The factory face_detection manifest over three tiny files: a bundle that verifies
    (verification does not run models) and signs to a few kilobytes."""
    from appliance.runtime.bundle import factory_bundle_dir, sha256_file

    target = parent / f"{BUNDLE}-tiny-{version}" / BUNDLE
    target.mkdir(parents=True)
    manifest = json.loads((factory_bundle_dir() / BUNDLE / "manifest.json").read_text())
    manifest["version"] = version
    for name, entry in manifest["files"].items():
        (target / name).write_bytes(f"tiny {name}\n".encode())
        entry["sha256"], entry["size"] = sha256_file(target / name), (target / name).stat().st_size
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


def signed_inputs(work: Path) -> tuple[dict[str, Path], Path]:
    """Inputs around a real signed bundle (made with a fresh key): the good update
    itself, then the bombs and refusals that need a signature to get past the first
    member. Returns the files and the trusted public key."""
    from ota.signing import keygen, sign

    private, public = keygen(work / "trusted")
    stranger, _ = keygen(work / "stranger")
    bundle = make_tiny_bundle(work / "bundle", "0.10.21-90")
    good = sign(bundle, private, work / "good.tgz")
    foreign = sign(bundle, stranger, work / "wrong-key.tgz")
    unsigned = work / "unsigned.tar"
    unsigned.write_bytes(
        b"".join(member(f"{BUNDLE}/{p.name}", p.read_bytes()) for p in sorted(bundle.iterdir()))
        + END
    )
    signature = _signature_member(good)
    files: dict[str, Path | bytes] = {
        "good (baseline)": good,
        "wrong-key": foreign,
        "unsigned": unsigned,
        "signed-then-declared-member-gzip-bomb-1.5G": member_bomb(
            signature, f"{BUNDLE}/reference.npz", GB_1_5
        ),
        "signed-then-undeclared-member-claims-2pow80": signature
        + tar_header(f"{BUNDLE}/extra.onnx", 1 << 80)
        + END,
        "signed-then-pax-path-claims-1.5G": extension_bomb(b"x", GB_1_5, before=signature),
    }
    paths = {}
    for name, value in files.items():
        if not isinstance(value, bytes):
            paths[name] = value
            continue
        path = work / f"{name}.tgz"
        path.write_bytes(value)
        paths[name] = path
    return paths, public


def _signature_member(update: Path) -> bytes:
    """The signature member of an update, header and padding included."""
    data = update.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    size = int(data[124:136].split(b"\0")[0], 8)
    return data[: BLOCK + size + (-size % BLOCK)]


# ---- running the command line ----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
TARGET_MB = 64.0
_MARK = "@@hostile-ota "
# Imported (and the parser built) before the idle RSS is read: what the command costs
# without any input is not the input's cost.
_WARM = "ota.cli ota.signing ota.agent ota.health ota.compat appliance.runtime.bundle"
_CHILD = f"""
import importlib, json, sys, time
from pathlib import Path
for module in {_WARM.split()!r}:
    try:
        importlib.import_module(module)
    except ImportError:
        pass
def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
from appliance.cli import build_parser, main
build_parser()  # imports what every subcommand's parser needs, input or not
idle = status("VmRSS")
start = time.perf_counter()
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code if isinstance(exc.code, int) else 1
seconds = time.perf_counter() - start
peak = status("VmHWM")
print({_MARK!r} + json.dumps({{"rc": rc, "idle_kb": idle, "peak_kb": peak, "s": seconds}}),
      file=sys.stderr)
"""


def _tail(path: Path, size: int = 16 * 1024) -> str:
    """The end of a child's output: an old, unbounded reader may print a 1.5 GB name."""
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
        return fh.read().decode("utf-8", "replace")


def run_cli(source: Path, args: list[str], timeout: float = 600) -> dict[str, object]:
    """``appliance <args>`` in a child process running ``source``'s code."""
    env = dict(os.environ, PYTHONPATH=str(source), PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory(prefix="hostile-ota-out-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, *args],
                cwd=source,
                env=env,
                stdout=stdout,
                stderr=stderr,
                timeout=timeout,
            )
        text = _tail(err) + "\n" + _tail(out)
    report: dict[str, object] = {"rc": done.returncode, "error": ""}
    shown = []
    for line in text.splitlines():
        if line.startswith(_MARK):
            report.update(json.loads(line[len(_MARK) :]))
        elif line.strip() and "downloaded" not in line and "initialized" not in line:
            shown.append(line.strip())
    report["error"] = shown[-1] if shown else ""
    return report


def line(name: str, command: str, r: dict[str, object]) -> str:
    if "peak_kb" not in r:
        return f"{name:44} {command:7} rc={r['rc']} crashed: {str(r['error'])[:150]}"
    over = (int(str(r["peak_kb"])) - int(str(r["idle_kb"]))) / 1024
    verdict = "ok" if over <= TARGET_MB else "OVER"
    message = str(r["error"]).replace("appliance ota ", "")[:150]
    return (
        f"{name:44} {command:7} rc={r['rc']} {over:7.1f} MB over idle "
        f"{float(str(r['s'])):6.2f} s  {verdict}  {message}"
    )


def measure(
    source: Path, work: Path, inputs: dict[str, Path], public: Path, commands: list[str]
) -> int:
    from appliance.runtime.bundle import factory_bundle_dir
    from ota.agent import Agent
    from ota.compat import Device
    from ota.health import hash_gate
    from ota.signing import load_public_key

    factory = work / "factory"
    shutil.copytree(factory_bundle_dir() / BUNDLE, factory / BUNDLE)
    device = Device("generic-x86", {"onnxruntime": "1.20.1"})
    worst = 0.0
    for index, (name, path) in enumerate(inputs.items()):
        root = work / f"root-{index}"
        for command in commands:
            args = ["ota", command, str(path), "--key", str(public)]
            if command == "install":
                Agent(root, [load_public_key(public)], device, hash_gate).initialize(factory)
                args += ["--root", str(root), "--factory", str(factory)]
                args += ["--health", "hashes", "--board", device.board]
            got = run_cli(source, args)
            print(line(name, command, got), flush=True)
            if "peak_kb" in got:
                over = (int(str(got["peak_kb"])) - int(str(got["idle_kb"]))) / 1024
                worst = max(worst, over)
        shutil.rmtree(root, ignore_errors=True)
    print(f"worst: {worst:.1f} MB over idle (target {TARGET_MB:.0f} MB)")
    return 0 if worst <= TARGET_MB else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.hostile.ota", description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to run (this one)")
    parser.add_argument("--only", help="inputs whose name contains this")
    parser.add_argument(
        "--commands", default="verify,install", help="which of verify,install to run"
    )
    parser.add_argument("--write-corpus", type=Path, help="write the small inputs there; exit")
    args = parser.parse_args(argv)
    if args.write_corpus:
        for path in write_corpus(args.write_corpus):
            print(f"{path} ({path.stat().st_size} bytes)")
        return 0
    with tempfile.TemporaryDirectory(prefix="hostile-ota-") as tmp:
        work = Path(tmp)
        inputs, public = signed_inputs(work)
        for name, data in unsigned_inputs(backed=True).items():
            path = work / (name + _suffix(data))
            path.write_bytes(data)
            inputs[name] = path
        if args.only:
            inputs = {k: v for k, v in inputs.items() if args.only in k}
        for name, path in inputs.items():
            print(f"# {name}: {path.stat().st_size} bytes", flush=True)
        commands = [c for c in args.commands.split(",") if c in ("verify", "install")]
        return measure(args.source.resolve(), work, inputs, public, commands)


if __name__ == "__main__":
    sys.exit(main())
