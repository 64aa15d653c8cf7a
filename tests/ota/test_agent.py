"""The update agent: install, refusals that change nothing, rollback, resumed downloads."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli import main as appliance_main
from appliance.runtime.bundle import verify_bundle
from ota.agent import Agent
from ota.compat import Device, compare_versions
from ota.errors import AgentError
from ota.health import hash_gate
from ota.signing import sign
from tests.ota.helpers import (
    BUNDLE,
    FACTORY_VERSION,
    Member,
    device_snapshot,
    file_member,
    make_bundle,
    range_server,
    rehash,
    rewrite,
)


def _versions(slot: Path) -> dict[str, str]:
    return {
        b.name: json.loads((b / "manifest.json").read_text())["version"]
        for b in sorted(slot.iterdir())
    }


def test_install_activates_the_new_version_after_the_reference_gate(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    seen: list[tuple[int, int | None]] = []
    agent = Agent(ota_root, trusted, device, progress=lambda d, t: seen.append((d, t)))
    status = agent.install(str(update_v2), job_id="job-1")  # default gate: reference outputs
    job = status["job"]
    assert (job["id"], job["state"], job["result"]) == ("job-1", "done", "installed")
    assert (job["bundle"], job["version"]) == (BUNDLE, "0.10.21-12")
    assert status["state"] == "idle"
    assert (status["active_slot"], status["committed_slot"], status["fallback_slot"]) == (
        "b",
        "b",
        "a",
    )
    assert os.readlink(ota_root / "active") == "slots/b"
    assert _versions(ota_root / "active") == {BUNDLE: "0.10.21-12"}
    assert verify_bundle(ota_root / "active" / BUNDLE) == []
    assert _versions(ota_root / "slots" / "a") == {BUNDLE: FACTORY_VERSION}  # the fallback
    assert status["high_water"] == {BUNDLE: "0.10.21-12"}
    size = update_v2.stat().st_size
    assert seen[-1] == (size, size) and job["progress"] == {"done": size, "total": size}
    assert not list((ota_root / "downloads").iterdir())  # cleaned up
    again = agent.install(str(update_v2))
    assert again["job"]["result"] == "already_installed"
    assert again["active_slot"] == "b"


def test_install_keeps_the_other_bundles_of_the_active_slot(
    tmp_path: Path, factory: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    two = tmp_path / "factory2"
    two.mkdir()
    shutil.copytree(factory / BUNDLE, two / BUNDLE)
    other = make_bundle(tmp_path, "3.0")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name"] = "face_detection_copy"
    (other / "manifest.json").write_text(json.dumps(manifest))
    os.rename(other, two / "face_detection_copy")
    agent = Agent(tmp_path / "ota", trusted, device, hash_gate)
    agent.initialize(two)
    status = agent.install(str(update_v2))
    assert status["job"]["result"] == "installed"
    assert _versions(tmp_path / "ota" / "active") == {
        BUNDLE: "0.10.21-12",
        "face_detection_copy": "3.0",
    }


def test_failing_health_gate_rolls_back_with_the_reason(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    checked: list[Path] = []

    def gate(slot: Path) -> list[str]:
        checked.append(slot)
        return ["face_detection: the daemon did not come back"]

    before = device_snapshot(ota_root)
    status = Agent(ota_root, trusted, device, gate).install(str(update_v2))
    job = status["job"]
    assert (job["state"], job["result"], job["error"]) == (
        "rolled_back",
        "rolled_back",
        "HealthGateFailed",
    )
    assert "the daemon did not come back" in job["reason"]
    assert checked == [ota_root / "slots" / "b"]  # the gate judged the new slot
    assert os.readlink(ota_root / "active") == "slots/a"
    assert _versions(ota_root / "active") == {BUNDLE: FACTORY_VERSION}
    assert status["high_water"] == before["high_water"]  # not raised
    assert (status["committed_slot"], status["fallback_slot"]) == ("a", None)


def test_reference_gate_rolls_back_a_signed_bundle_whose_outputs_differ(
    ota_root: Path,
    trusted: list,
    device: Device,
    tmp_path: Path,
    private_key: Ed25519PrivateKey,
) -> None:
    """Hashes and signature are fine; the model just does not reproduce its reference."""
    bundle = make_bundle(tmp_path, "0.10.21-16")
    with np.load(bundle / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["fp32/regressors"] = arrays["fp32/regressors"] + 0.5
    np.savez(bundle / "reference.npz", **arrays)
    rehash(bundle)
    update = sign(bundle, private_key, tmp_path / "u.bundle")
    status = Agent(ota_root, trusted, device).install(str(update))  # the default gate
    assert status["job"]["state"] == "rolled_back"
    assert "fp32 reference: regressors max diff" in status["job"]["reason"]
    assert status["active_slot"] == "a"
    assert _versions(ota_root / "active") == {BUNDLE: FACTORY_VERSION}


def test_a_gate_that_raises_also_rolls_back(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    def gate(slot: Path) -> list[str]:
        raise RuntimeError("CUDA out of memory")

    status = Agent(ota_root, trusted, device, gate).install(str(update_v2))
    assert status["job"]["state"] == "rolled_back"
    assert "RuntimeError: CUDA out of memory" in status["job"]["reason"]
    assert status["active_slot"] == "a"


def _tamper(edit: Callable[[list[Member]], list[Member]]) -> Callable[..., Path]:
    def make(update: Path, tmp: Path, **_: object) -> Path:
        return rewrite(update, tmp / "tampered.bundle", edit)

    return make


def _signature_flip(members: list[Member]) -> list[Member]:
    doc = json.loads(members[0][1] or b"")
    doc["statement"]["version"] = "0.10.21-99"
    return [file_member("signature", json.dumps(doc).encode()), *members[1:]]


def _hash_flip(members: list[Member]) -> list[Member]:
    out = []
    for info, data in members:
        if info.name.endswith("reference.npz") and data:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        out.append((info, data))
    return out


def _truncated(update: Path, tmp: Path, **_: object) -> Path:
    cut = tmp / "cut.bundle"
    cut.write_bytes(update.read_bytes()[: update.stat().st_size // 2])
    return cut


def _signed(version: str, boards: list[str] | None = None, stranger: bool = False) -> Callable:
    def make(
        update: Path, tmp: Path, keys: dict[str, Path], private_key: Ed25519PrivateKey
    ) -> Path:
        key = keys["stranger_private"] if stranger else private_key
        bundle = make_bundle(tmp, version)
        return sign(bundle, key, tmp / f"{version}.bundle", boards)

    return make


REFUSED = {
    "bad signature": (_tamper(_signature_flip), "BadSignatureError"),
    "unknown key": (_signed("0.10.21-13", stranger=True), "UnknownKeyError"),
    "wrong file hash": (_tamper(_hash_flip), "HashMismatchError"),
    "truncated file": (_truncated, "CorruptArchiveError"),
    "extra file": (
        _tamper(lambda m: [*m, file_member(f"{BUNDLE}/x.onnx", b"x")]),
        "ExtraFileError",
    ),
    "path traversal": (_tamper(lambda m: [*m, file_member("../x", b"x")]), "UnsafePathError"),
    "older version": (_signed("0.10.21-0"), "DowngradeError"),
    "wrong board": (_signed("0.10.21-13", boards=["jetson-agx-orin-devkit"]), "IncompatibleError"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_update_changes_nothing(
    case: str,
    ota_root: Path,
    trusted: list,
    device: Device,
    update_v2: Path,
    tmp_path: Path,
    keys: dict[str, Path],
    private_key: Ed25519PrivateKey,
) -> None:
    make, error = REFUSED[case]
    work = tmp_path / "work"
    work.mkdir()
    bad = make(update_v2, work, keys=keys, private_key=private_key)
    before = device_snapshot(ota_root)
    gate_calls: list[Path] = []

    def gate(slot: Path) -> list[str]:
        gate_calls.append(slot)
        return []

    agent = Agent(ota_root, trusted, device, gate)
    status = agent.install(str(bad))
    job = status["job"]
    assert (job["state"], job["result"], job["error"]) == ("failed", "failed", error), job
    assert job["reason"]
    assert device_snapshot(ota_root) == before  # pointer, both slots, committed, versions
    assert gate_calls == []
    assert not list((ota_root / "downloads").iterdir())
    assert not (ota_root / "tmp").exists()  # the verification scratch is gone too


def test_a_bundle_for_this_board_and_runtime_is_accepted_else_refused(
    ota_root: Path, trusted: list, tmp_path: Path, private_key: Ed25519PrivateKey
) -> None:
    update = sign(
        make_bundle(tmp_path, "0.10.21-15"), private_key, tmp_path / "u.bundle", ["generic-x86"]
    )
    old_runtime = Device("generic-x86", {"onnxruntime": "1.15.0"})
    status = Agent(ota_root, trusted, old_runtime, hash_gate).install(str(update))
    assert status["job"]["error"] == "IncompatibleError"
    assert "onnxruntime 1.15.0 < 1.16" in status["job"]["reason"]
    tensorrt = Device("generic-x86", {"tensorrt": "10.3.0"})
    status = Agent(ota_root, trusted, tensorrt, hash_gate).install(str(update))
    assert status["job"]["result"] == "installed"


def test_interrupted_download_resumes_with_a_range_request(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    data = update_v2.read_bytes()
    with range_server() as server:
        server.files["/v2.bundle"] = data
        server.cut_after, server.cuts_left = len(data) // 3, 1
        agent = Agent(ota_root, trusted, device, hash_gate)
        first = agent.install(server.url("/v2.bundle"), job_id="dl")
        assert first["state"] == "download"  # suspended, resumable
        assert (
            first["job"]["error"] == "DownloadError"
            and "connection closed" in first["job"]["reason"]
        )
        partial = ota_root / "downloads" / "dl.partial"
        have = partial.stat().st_size
        assert 0 < have < len(data)
        assert first["job"]["progress"]["done"] == have
        with pytest.raises(AgentError, match="resume or abort"):
            agent.install(server.url("/v2.bundle"))
        done = Agent(ota_root, trusted, device, hash_gate).resume()
    assert server.requests[0] == ("/v2.bundle", None)
    assert server.requests[1] == ("/v2.bundle", f"bytes={have}-")
    assert done["job"]["result"] == "installed"
    assert done["job"]["progress"] == {"done": len(data), "total": len(data)}
    assert _versions(ota_root / "active") == {BUNDLE: "0.10.21-12"}
    assert verify_bundle(ota_root / "active" / BUNDLE) == []


def test_a_missing_url_fails_the_job_and_abort_ends_a_stuck_one(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    agent = Agent(ota_root, trusted, device, hash_gate)
    with range_server() as server:
        status = agent.install(server.url("/nothing.bundle"))
        assert (status["job"]["state"], status["job"]["error"]) == ("failed", "DownloadError")
        assert "404" in status["job"]["reason"]
        server.files["/v2.bundle"] = update_v2.read_bytes()
        server.cut_after, server.cuts_left = 1000, 1
        assert agent.install(server.url("/v2.bundle"))["state"] == "download"
    status = agent.abort()
    assert (status["job"]["state"], status["job"]["error"]) == ("failed", "Aborted")
    assert status["active_slot"] == "a"
    with pytest.raises(AgentError, match="no unfinished job"):
        agent.abort()


def test_one_agent_at_a_time(
    ota_root: Path, trusted: list, device: Device, update_v2: Path
) -> None:
    fd = os.open(ota_root / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(AgentError, match="another update agent"):
            Agent(ota_root, trusted, device, hash_gate).install(str(update_v2))
    finally:
        os.close(fd)


def test_version_order() -> None:
    assert compare_versions("0.10.21-2", "0.10.21-1") == 1
    assert compare_versions("0.10.21", "0.10.21-1") == -1
    assert compare_versions("1.10.0", "1.9.9") == 1
    assert compare_versions("1.0.0", "1.0.0") == 0


def test_command_line(
    tmp_path: Path,
    factory: Path,
    update_v2: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = str(tmp_path / "ota")
    key = str(keys["public"])
    assert appliance_main(["ota", "keygen", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "ota-signing.key").exists()
    assert "key id" in capsys.readouterr().out
    assert appliance_main(["ota", "verify", str(update_v2), "--key", key, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "0.10.21-12"
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(update_v2.read_bytes()[:5000])
    assert appliance_main(["ota", "verify", str(bad), "--key", key]) == 1
    assert "appliance ota verify: CorruptArchiveError" in capsys.readouterr().err
    common = ["--root", root, "--key", key, "--board", "generic-x86", "--health", "hashes"]
    code = appliance_main(["ota", "install", str(update_v2), "--factory", str(factory), *common])
    assert code == 0
    assert "installed: face_detection 0.10.21-12" in capsys.readouterr().out
    assert appliance_main(["ota", "status", "--root", root, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["active_slot"], status["high_water"]) == ("b", {BUNDLE: "0.10.21-12"})
    assert appliance_main(["ota", "install", str(bad), *common]) == 1
    assert "CorruptArchiveError" in capsys.readouterr().err
    assert appliance_main(["ota", "status", "--root", root]) == 0
    assert "active slot: b" in capsys.readouterr().out
    out = tmp_path / "signed.bundle"
    sign_args = ["ota", "sign", str(factory / BUNDLE), "--key", str(keys["private"])]
    assert appliance_main([*sign_args, "--out", str(out)]) == 0
    assert out.exists()
