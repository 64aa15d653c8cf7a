"""The numerics on the CPU classes users have: the host, an AVX2-only x86-64 (no VNNI)
and aarch64 (the Jetson's, and many receivers'), the last two emulated (emulation.py).

``make test`` runs the AVX2-only class (40 s); ``make test-cpus`` adds aarch64 (it
fetches an aarch64 Python and wheels once into .cache/cpus) and ``auto`` on each
emulated class (2 minutes each: it times every precision)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from appliance.runtime.bundle import factory_bundle_dir
from ota.signing import keygen, sign
from tests.codec.conftest import read_clip
from tests.cpus import emulation
from tests.ota.helpers import BUNDLE, make_bundle, rehash

CLASSES = [pytest.param("haswell"), pytest.param("aarch64", marks=pytest.mark.cpu_matrix)]
FRAMES = 12  # the codec's first frames: a reference, keypoints, a residual or two


@pytest.fixture(scope="module", params=CLASSES)
def machine(request: pytest.FixtureRequest) -> emulation.Machine:
    try:
        return emulation.CLASSES[request.param]()
    except emulation.Unavailable as exc:
        pytest.fail(str(exc))


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_every_bundle_verifies(machine: emulation.Machine) -> None:
    """Hashes, and every shipped precision reproduces (FP32 within its raw tolerance, INT8
    by its accuracy gate recomputed there): the OTA health gate's judgement."""
    result = machine.run("-m", "engines", "verify")
    _ok(result)
    assert "MISMATCH" not in result.stdout and "REFUSED" not in result.stdout
    assert result.stdout.count("reference int8") >= 5, result.stdout


@pytest.mark.cpu_matrix
def test_auto_precision_there_reproduces(machine: emulation.Machine) -> None:
    """What ``auto`` chose there, loaded and checked there."""
    program = (
        "from appliance.runtime.bundle import check_reference, factory_bundle_dir\n"
        "from appliance.runtime.onnx import OnnxRuntimeBackend\n"
        "b = OnnxRuntimeBackend()\n"
        "for d in sorted(p for p in factory_bundle_dir().iterdir() if p.is_dir()):\n"
        "    m = b.load(d)\n"
        "    assert all(c.ok for c in check_reference(d, m)), d.name\n"
        "    print(d.name, m.precision, b.choices[m.name].get('refused'))\n"
    )
    result = machine.run("-c", program)
    _ok(result)
    assert len(result.stdout.splitlines()) == 5, result.stdout


def _computing_something_else(parent: Path, version: str) -> Path:
    """A face_detection bundle whose networks do not compute what its reference says:
    signed and hash-correct, the stored FP32 boxes 40 px off. Only running it shows it."""
    bundle = make_bundle(parent, version)
    with np.load(bundle / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["fp32/regressors"] = arrays["fp32/regressors"] + np.float32(40.0)
    np.savez(bundle / "reference.npz", **arrays)  # type: ignore[arg-type]
    rehash(bundle)
    return bundle


def test_a_signed_update_passes_the_health_gate_there_and_a_wrong_one_rolls_back(
    machine: emulation.Machine, tmp_path: Path
) -> None:
    private, public = keygen(tmp_path / "keys")
    factory = tmp_path / "factory"
    (factory / BUNDLE).parent.mkdir()
    shutil.copytree(factory_bundle_dir() / BUNDLE, factory / BUNDLE)
    good = sign(make_bundle(tmp_path / "good", "0.10.21-12", 2), private, tmp_path / "good.bundle")
    wrong = _computing_something_else(tmp_path / "wrong", "0.10.21-13")
    bad = sign(wrong, private, tmp_path / "bad.bundle")
    agent = ["--root", str(tmp_path / "ota"), "--key", str(public), "--board", "generic-x86"]
    installed = machine.run("-m", "appliance", "ota", "install", str(good),
                            "--factory", str(factory), *agent)  # fmt: skip
    _ok(installed)
    assert "installed: face_detection 0.10.21-12" in installed.stdout
    refused = machine.run("-m", "appliance", "ota", "install", str(bad), *agent)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "face_detection: fp32 reference" in refused.stdout + refused.stderr
    status = machine.run("-m", "appliance", "ota", "status", "--root", str(tmp_path / "ota"),
                         "--json")  # fmt: skip
    _ok(status)
    assert '"face_detection": "0.10.21-12"' in status.stdout


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = read_clip("lp_d20", FRAMES)
    path = tmp_path_factory.mktemp("clip") / "clip.npz"
    np.savez(path, frames=np.stack(clip.frames), landmarks=clip.landmarks, iris=clip.iris,
             fps=clip.fps)  # fmt: skip
    return path


def _end(machine: emulation.Machine, action: str, source: Path, out: Path) -> np.lib.npyio.NpzFile:
    _ok(machine.run("-m", "tests.cpus.codec_end", action, str(source), str(out)))
    return np.load(out)


def test_the_receiver_there_shows_what_the_sender_here_checked(
    machine: emulation.Machine, clip: Path, tmp_path: Path
) -> None:
    """Both ways. Same instruction set: bit for bit, as the spec promises. x86-64 and
    aarch64: the reference pictures bit for bit (AV1 decoding is exact by the standard,
    and the colour conversion is integer arithmetic of ours); the warped frames within
    one level at a few pixels (OpenCV's warps and float rounding differ between SIMD
    units), never drifting: the receiver's bank holds only what was sent."""
    host = emulation.host()
    same_isa = machine.name != "aarch64"
    for sender, receiver in ((host, machine), (machine, host)):
        sent = tmp_path / f"{sender.name}-sent.npz"
        with _end(sender, "send", clip, sent) as promised:
            want, pictures = list(promised["shown"]), promised["pictures"]
        with _end(receiver, "receive", sent, tmp_path / f"{receiver.name}.npz") as shown:
            got, seen = list(shown["shown"]), shown["pictures"]
        direction = f"{sender.name} -> {receiver.name}"
        assert len(want) == len(got) == FRAMES, direction
        if same_isa:
            assert got == want, direction
            continue
        assert got[0] == want[0], f"{direction}: the first reference picture differs"
        diff = np.abs(seen.astype(np.int16) - pictures.astype(np.int16))
        assert diff.max() <= 1, f"{direction}: {diff.max()} levels apart"
        assert (diff > 0).mean() < 1e-3, f"{direction}: {(diff > 0).mean():.2%} of values differ"
