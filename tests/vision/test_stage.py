"""The pipeline stage, its settings, the preview overlay and the benchmark."""

from __future__ import annotations

import shutil
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.frame import Frame
from appliance.runtime.bundle import BundleError, factory_bundle_dir
from appliance.runtime.onnx import OnnxRuntimeBackend
from appliance.vision.bench import bench_tracking, fit
from appliance.vision.overlay import draw_faces
from appliance.vision.stage import Face, FaceTrackingStage, VisionSettings


@pytest.fixture(scope="module")
def stage(backend: OnnxRuntimeBackend) -> FaceTrackingStage:
    return FaceTrackingStage(backend, precision="fp32")


def _defaults() -> SimpleNamespace:
    """A config whose vision section has every setting at its default."""
    return SimpleNamespace(
        vision=SimpleNamespace(**{f.name: f.default for f in fields(VisionSettings)})
    )


def _run(stage: FaceTrackingStage, source: SyntheticSource, n: int, start: int = 0) -> Frame:
    frame = Frame(np.zeros((1, 1, 3), np.uint8), 0)
    for i in range(start, start + n):
        image, truth = source.render(i)
        frame = stage.process(Frame(image, i, t_capture=i / 30.0, meta={"truth": truth}))
    return frame


def test_stage_puts_faces_in_the_frame(
    stage: FaceTrackingStage, synthetic: SyntheticSource
) -> None:
    stage.configure(_defaults())
    stage.configure(SimpleNamespace())  # no vision section: nothing changes
    assert stage.settings == VisionSettings()
    stage.tracker.reset()
    frame = _run(stage, synthetic, 5)
    assert stage.name == "vision"
    faces = frame.meta["faces"]
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Face) and face.id == 0 and face.age == 5
    assert face.landmarks.shape == (468, 3) and face.landmarks.dtype == np.float32
    assert face.iris is not None and face.iris.shape == (2, 5, 2)
    assert face.iris_radius is not None and face.iris_radius.shape == (2,)
    assert face.pose is not None and abs(face.pose.roll - frame.meta["truth"]["roll_deg"]) < 3
    x0, _, x1, _ = face.box
    tx0, _, tx1, _ = frame.meta["truth"]["face_box"]
    assert abs((x0 + x1) - (tx0 + tx1)) / 2 < 0.1 * (tx1 - tx0)
    assert 0.5 < face.score <= 1.0


def test_configure_switches_parts_live(
    stage: FaceTrackingStage, synthetic: SyntheticSource
) -> None:
    vision = SimpleNamespace(iris=False, pose=False, max_faces=1, detect_every=3)
    stage.configure(SimpleNamespace(vision=vision))
    assert stage.settings == VisionSettings(iris=False, pose=False, max_faces=1, detect_every=3)
    face = _run(stage, synthetic, 2, start=10).meta["faces"][0]
    assert face.iris is None and face.iris_radius is None and face.pose is None

    stage.configure(SimpleNamespace(vision=SimpleNamespace(enabled=False)))
    frame = _run(stage, synthetic, 1, start=12)
    assert "faces" not in frame.meta  # not looked for, which is not "no face"
    assert stage.tracker.tracks == []

    stage.configure(SimpleNamespace(vision=SimpleNamespace(max_faces=3)))  # others as they were
    expected = VisionSettings(enabled=False, iris=False, pose=False, max_faces=3, detect_every=3)
    assert stage.settings == expected
    stage.configure(_defaults())
    face = _run(stage, synthetic, 2, start=13).meta["faces"][0]
    assert face.iris is not None and face.pose is not None


def test_settings_mirror_the_config_schema() -> None:
    from appliance.config.schema import Config, VisionConfig

    for f in fields(VisionSettings):
        assert VisionConfig.model_fields[f.name].default == f.default, f.name
    assert VisionSettings.from_config(Config()) == VisionSettings()


def test_stage_from_the_config() -> None:
    from appliance.config.schema import Config

    config = Config.model_validate({"vision": {"max_faces": 2, "iris": False, "threads": 1}})
    stage = FaceTrackingStage.from_config(config)
    try:
        assert stage.backend.name in ("onnxruntime", "tensorrt")
        assert stage.settings == VisionSettings(max_faces=2, iris=False)
        assert stage.tracker.iris is None and stage.tracker.max_faces == 2
    finally:
        stage.close()


def test_grey_and_odd_frames_pass_through_the_stage(stage: FaceTrackingStage) -> None:
    stage.configure(_defaults())
    image = SyntheticSource(641, 359).render(3)[0]
    grey = image.mean(axis=2).astype(np.uint8)  # 2-D, as a mono sensor might give
    for i, img in enumerate([grey, grey[:, :, None], np.dstack([image, image[:, :, :1]])]):
        frame = stage.process(Frame(img, i, t_capture=i / 30.0))
        assert len(frame.meta["faces"]) == 1


def test_bad_bundle_is_refused_at_construction(backend: OnnxRuntimeBackend, tmp_path: Path) -> None:
    for name in ("face_detection", "face_mesh", "iris"):
        shutil.copytree(factory_bundle_dir() / name, tmp_path / name)
    with (tmp_path / "face_mesh" / "face_mesh.fp32.onnx").open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)[0]
        fh.seek(1000)
        fh.write(bytes([byte ^ 0xFF]))  # one flipped byte
    with pytest.raises(BundleError, match="sha256"):
        FaceTrackingStage(backend, tmp_path)


def test_overlay_draws_and_leaves_the_input_alone(
    stage: FaceTrackingStage, synthetic: SyntheticSource
) -> None:
    stage.configure(_defaults())
    frame = _run(stage, synthetic, 2, start=20)
    image = frame.image
    before = image.copy()
    drawn = draw_faces(image, frame.meta["faces"])
    assert np.array_equal(image, before) and drawn.shape == image.shape
    changed = np.any(drawn != image, axis=2)
    lm = frame.meta["faces"][0].landmarks
    x0, y0 = np.floor(lm[:, :2].min(axis=0)).astype(int) - 40
    x1, y1 = np.ceil(lm[:, :2].max(axis=0)).astype(int) + 40
    assert changed[y0:y1, x0:x1].sum() > 2000  # mesh, irises, box, axes
    assert changed.sum() == changed[y0:y1, x0:x1].sum()  # nothing drawn elsewhere
    assert np.array_equal(draw_faces(image, []), image)
    in_place = draw_faces(image, frame.meta["faces"], copy=False)
    assert in_place is image and not np.array_equal(image, before)


def test_bench_reports_each_part(backend: OnnxRuntimeBackend) -> None:
    frames = [SyntheticSource(480, 480).render(i)[0] for i in range(5)]
    result = bench_tracking(frames, seconds=0.3, sizes=[(320, 180)], backend=backend)
    size = result["sizes"]["320x180"]
    assert size["frames"] > 3 and size["fps"] > 0
    assert size["faces_per_frame"] == 1.0
    for part in ("mesh_ms", "iris_ms", "pose_ms", "frame_ms"):
        assert size[part]["p50"] > 0, part
    assert result["threads"] == 1 and set(result["precision"]) == {
        "face_detection",
        "face_mesh",
        "iris",
    }
    assert fit(frames[0], 320, 180).shape == (180, 320, 3)
