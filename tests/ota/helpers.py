"""Material for the OTA tests: updates made from the real face_detection bundle, a
tar rewriter for tampering, a snapshot of everything an update may change, and an
HTTP server that honours Range requests and can drop a connection half-way."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from appliance.runtime.bundle import factory_bundle_dir, sha256_file

BUNDLE = "face_detection"
FACTORY_VERSION = "0.10.21-2"


def rehash(bundle_dir: Path) -> None:
    """Recompute every file's sha256 and size in the manifest, as the recipe would."""
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for name, entry in manifest["files"].items():
        entry["sha256"] = sha256_file(bundle_dir / name)
        entry["size"] = (bundle_dir / name).stat().st_size
    path.write_text(json.dumps(manifest, indent=2))


def make_bundle(parent: Path, version: str, generation: int | None = None) -> Path:
    """A copy of the factory face_detection bundle at ``version``.

    ``generation`` also rewrites reference.npz with one extra array, so the update
    differs from the factory bundle in a data file too (not only in its manifest): a
    slot that mixed two versions would then fail its hash check.
    """
    target = parent / f"{BUNDLE}-{version}" / BUNDLE
    shutil.copytree(factory_bundle_dir() / BUNDLE, target)
    if generation is not None:
        with np.load(target / "reference.npz") as data:
            arrays = {k: data[k] for k in data.files}
        arrays["ota_test_generation"] = np.array([generation])
        np.savez(target / "reference.npz", **arrays)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rehash(target)
    return target


Member = tuple[tarfile.TarInfo, bytes | None]


def read_members(update: Path) -> list[Member]:
    members: list[Member] = []
    with tarfile.open(update) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member) if member.isreg() else None
            members.append((member, data.read() if data is not None else None))
    return members


def write_members(out: Path, members: list[Member]) -> Path:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def rewrite(update: Path, out: Path, edit: Callable[[list[Member]], list[Member]]) -> Path:
    """Copy an update archive member by member through ``edit`` (the tamperer)."""
    return write_members(out, edit(read_members(update)))


def file_member(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and link below ``root``: relative path -> sha256 or link target."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def device_snapshot(root: Path) -> dict[str, Any]:
    """What a refused update must leave alone: the pointer, both slots, the versions."""
    state = json.loads((root / "state.json").read_text())
    return {
        "active": os.readlink(root / "active"),
        "slots": tree_digest(root / "slots"),
        "committed_slot": state["committed_slot"],
        "fallback_slot": state["fallback_slot"],
        "high_water": state["high_water"],
    }


class RangeServer:
    """Serves ``files`` (URL path -> bytes) and ``directory`` on 127.0.0.1, with Range.

    ``cut_after``: the next response(s) send only this many body bytes, then drop the
    connection (Content-Length still announces the whole body). ``requests`` records
    (path, Range header) of each request.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.directory: Path | None = None  # also serves /<name> from here
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None
        self.cuts_left = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None and server.directory is not None:
                    path = server.directory / self.path.lstrip("/")
                    data = path.read_bytes() if path.is_file() else None
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                    start = int(wanted[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if server.cut_after is not None and server.cuts_left > 0:
                    server.cuts_left -= 1
                    body = body[: server.cut_after]
                    self.close_connection = True
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@contextmanager
def range_server() -> Iterator[RangeServer]:
    server = RangeServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
