"""Shared models and frames for the vision tests.

The networks are loaded once per session, FP32 on purpose: ``auto`` picks the faster
precision of the machine, and the figures asserted here should not change with the CPU
the tests happen to run on.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.runtime.bundle import factory_bundle_dir
from appliance.runtime.onnx import OnnxRuntimeBackend
from appliance.vision.detect import FaceDetector
from appliance.vision.iris import IrisModel
from appliance.vision.landmarks import FaceMesh
from appliance.vision.net import load_network
from appliance.vision.tracker import FaceTracker


@pytest.fixture(scope="session")
def backend() -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(threads=1)


@pytest.fixture(scope="session")
def detector(backend: OnnxRuntimeBackend) -> FaceDetector:
    return FaceDetector(load_network(backend, factory_bundle_dir() / "face_detection", "fp32"))


@pytest.fixture(scope="session")
def mesh(backend: OnnxRuntimeBackend) -> FaceMesh:
    return FaceMesh(load_network(backend, factory_bundle_dir() / "face_mesh", "fp32"))


@pytest.fixture(scope="session")
def iris_model(backend: OnnxRuntimeBackend) -> IrisModel:
    return IrisModel(load_network(backend, factory_bundle_dir() / "iris", "fp32"))


@pytest.fixture
def make_tracker(
    detector: FaceDetector, mesh: FaceMesh, iris_model: IrisModel
) -> Callable[..., FaceTracker]:
    """A fresh tracker: ``make_tracker(iris=False, smoothing=True, max_faces=4, ...)``."""

    def make(
        iris: bool = False,
        smoothing: bool = True,
        pose: bool = True,
        max_faces: int = 4,
        detect_every: int = 10,
    ) -> FaceTracker:
        return FaceTracker(
            detector,
            mesh,
            iris_model if iris else None,
            max_faces=max_faces,
            detect_every=detect_every,
            pose=pose,
            smoothing=smoothing,
        )

    return make


@pytest.fixture(scope="session")
def synthetic() -> SyntheticSource:
    return SyntheticSource(1280, 720)
