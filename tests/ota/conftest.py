"""Keys, a device description and an initialized OTA root for the OTA tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.runtime.bundle import factory_bundle_dir
from ota.agent import Agent
from ota.compat import Device
from ota.health import hash_gate
from ota.signing import keygen, load_private_key, load_public_key, sign
from tests.ota.helpers import BUNDLE, make_bundle


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trusted pair and a stranger's pair, as files."""
    root = tmp_path_factory.mktemp("keys")
    private, public = keygen(root / "trusted")
    stranger_private, stranger_public = keygen(root / "stranger")
    return {
        "private": private,
        "public": public,
        "stranger_private": stranger_private,
        "stranger_public": stranger_public,
    }


@pytest.fixture(scope="session")
def private_key(keys: dict[str, Path]) -> Ed25519PrivateKey:
    return load_private_key(keys["private"])


@pytest.fixture
def trusted(keys: dict[str, Path]) -> list:
    return [load_public_key(keys["public"])]


@pytest.fixture
def device() -> Device:
    return Device("generic-x86", {"onnxruntime": "1.20.1"})


@pytest.fixture(scope="session")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A factory bundles directory holding face_detection only (small and fast)."""
    root = tmp_path_factory.mktemp("factory")
    shutil.copytree(factory_bundle_dir() / BUNDLE, root / BUNDLE)
    return root


@pytest.fixture(scope="session")
def update_v2(tmp_path_factory: pytest.TempPathFactory, private_key: Ed25519PrivateKey) -> Path:
    """face_detection 0.10.21-12 (a changed reference.npz too), signed by the trusted key."""
    work = tmp_path_factory.mktemp("update_v2")
    return sign(make_bundle(work, "0.10.21-12", generation=2), private_key, work / "v2.bundle")


@pytest.fixture
def ota_root(tmp_path: Path, factory: Path, trusted: list, device: Device) -> Path:
    root = tmp_path / "ota"
    assert Agent(root, trusted, device, hash_gate).initialize(factory)
    return root
