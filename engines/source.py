"""The pinned source: the mediapipe wheel, fetched by hash, never installed.

Installing mediapipe 0.10.21 would pull numpy<2, protobuf<5 and more into the
converter venv for nothing: the recipe only needs the .tflite files inside it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from appliance.runtime.bundle import sha256_file
from engines.models import SOURCE_WHEEL, SOURCE_WHEEL_SHA256, ModelSpec

PIN_FILE = Path(__file__).resolve().parent / "source-wheel.txt"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache: Path) -> Path:
    """The pinned wheel in ``cache``, downloaded once; its sha256 is checked every time."""
    wheel = cache / SOURCE_WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # pip checks the hash itself (--require-hashes); the platform flags fetch the same
        # file whatever machine builds (an aarch64 Jetson included).
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "-r",
            str(PIN_FILE),
            "-d",
            str(cache),
            "--quiet",
        ]
        subprocess.run(cmd, check=True)
    actual = sha256_file(wheel)
    if actual != SOURCE_WHEEL_SHA256:
        raise RuntimeError(
            f"{wheel}: sha256 {actual} is not the pinned {SOURCE_WHEEL_SHA256}; delete it and retry"
        )
    return wheel


def extract_tflite(wheel: Path, spec: ModelSpec, out_dir: Path) -> Path:
    """Unzip the model's .tflite next to the build files, checking its own pinned hash."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(spec.member)
    actual = sha256_bytes(data)
    if actual != spec.tflite_sha256:
        raise RuntimeError(f"{spec.member}: sha256 {actual}, expected {spec.tflite_sha256}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / Path(spec.member).name
    path.write_bytes(data)
    return path
