"""The pipeline stage: modes, live settings, refused changes, odd frames, the benchmark."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from appliance.background import (
    BackgroundError,
    BackgroundSettings,
    BackgroundStage,
    PersonSegmenter,
    check_background,
)
from appliance.background.bench import bench_background
from appliance.capture.synthetic import SyntheticSource
from appliance.config import Config, ConfigError, ConfigManager
from appliance.config.schema import BackgroundConfig
from appliance.frame import Frame
from appliance.runtime.onnx import OnnxRuntimeBackend
from tests.background.helpers import (
    inside,
    iou,
    make_stage,
    mean_diff,
    person_truth,
    room_blurred,
    run,
)

RED = (0, 0, 255)


def config(**background: object) -> Config:
    return Config(background=BackgroundConfig(**background))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scene(synthetic: SyntheticSource) -> tuple[np.ndarray, np.ndarray]:
    """A frame and the bool mask of its person."""
    image, _ = synthetic.render(0)
    return image, person_truth(synthetic, image)


def test_settings_mirror_the_schema() -> None:
    schema = BackgroundConfig()
    for f in fields(BackgroundSettings):
        assert getattr(BackgroundSettings(), f.name) == getattr(schema, f.name), f.name
    assert BackgroundSettings.from_config(config(mode="blur", blur=0.05)).blur == 0.05
    assert BackgroundSettings.from_config(SimpleNamespace()) == BackgroundSettings()


def test_off_returns_the_frame_untouched_without_the_model(
    segmenter: PersonSegmenter,
    scene: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = make_stage(segmenter)
    calls = []
    monkeypatch.setattr(stage.segmenter, "segment", lambda image: calls.append(1))
    image = scene[0].copy()
    frame = Frame(image, 0)
    assert stage.process(frame) is frame
    assert frame.image is image and np.array_equal(image, scene[0])
    assert "background" not in frame.meta and not calls


def test_blur_softens_the_room_and_keeps_the_person(
    segmenter: PersonSegmenter, synthetic: SyntheticSource, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    """Around the person the room looks as if blurred without them in front: no halo."""
    image, person = scene
    frame = run(make_stage(segmenter, mode="blur"), image)
    out = frame.image
    assert out.shape == image.shape and out.dtype == np.uint8
    room = inside(~person, 10)
    assert mean_diff(out, room_blurred(synthetic, 0.03), room) < 1.0
    assert mean_diff(out, image, room) > 3.0
    core = inside(person, 12)
    diff = np.abs(out.astype(int) - image)[core]
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4
    info = frame.meta["background"]
    assert info["mode"] == "blur"
    assert info["coverage"] == pytest.approx(person.mean(), abs=0.02)


def test_replace_with_colour_and_with_a_picture(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, person = scene
    room, core = inside(~person, 20), inside(person, 12)
    out = run(make_stage(segmenter, mode="replace", color="#ff0000"), image).image
    assert (np.abs(out[room].astype(int) - RED) <= 1).mean() > 0.995
    assert np.abs(out.astype(int) - image)[core].mean() < 1.0

    picture = np.zeros((720, 1280, 3), np.uint8)
    picture[:, :, 1] = np.linspace(0, 255, 1280, dtype=np.uint8)[None, :]  # green ramp
    path = tmp_path / "beach.png"
    cv2.imwrite(str(path), picture)
    out = run(make_stage(segmenter, mode="replace", image=str(path)), image).image
    assert (np.abs(out[room].astype(int) - picture[room]) <= 1).mean() > 0.995
    assert np.abs(out.astype(int) - image)[core].mean() < 1.0


def test_mask_coverage_and_iou_on_the_synthetic_person(
    segmenter: PersonSegmenter, synthetic: SyntheticSource
) -> None:
    stage = make_stage(segmenter, mode="blur", stability=0.6)
    scores = []
    for index in range(0, 90, 6):  # a few seconds of the person moving, one stage
        image, _ = synthetic.render(index)
        frame = run(stage, image, index)
        assert stage.last_matte is not None
        matte = cv2.resize(stage.last_matte, (1280, 720))
        scores.append(iou(matte > 127, person_truth(synthetic, image)))
        assert 0.1 < frame.meta["background"]["coverage"] < 0.4
    assert min(scores) > 0.95


def test_settings_change_between_frames(
    segmenter: PersonSegmenter, synthetic: SyntheticSource, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    image, person = scene
    room = inside(~person, 20)
    light_room, heavy_room = room_blurred(synthetic, 0.01), room_blurred(synthetic, 0.1)
    stage = make_stage(segmenter)
    stage.configure(config(mode="blur", blur=0.01))
    light = run(stage, image, 0).image
    assert mean_diff(light, light_room, room) < 1.0 < 3.0 < mean_diff(light, heavy_room, room)
    stage.configure(config(mode="blur", blur=0.1))
    heavy = run(stage, image, 1).image
    assert mean_diff(heavy, heavy_room, room) < 1.5 < 3.0 < mean_diff(heavy, light_room, room)
    stage.configure(config(mode="replace", color="#ff0000"))
    red = run(stage, image, 2)
    assert red.meta["background"]["mode"] == "replace"
    assert (np.abs(red.image[room].astype(int) - RED) <= 1).all()
    stage.configure(config(mode="off"))
    off = run(stage, image, 3)
    assert np.array_equal(off.image, image) and "background" not in off.meta
    stage.configure(SimpleNamespace())  # no background section: nothing changes
    assert stage.settings.mode == "off"


def test_an_unreadable_picture_is_refused_and_nothing_changes(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, person = scene
    room = inside(~person, 20)
    missing = str(tmp_path / "gone.jpg")
    old, new = config(mode="blur"), config(mode="replace", image=missing)
    with pytest.raises(ConfigError) as refused:
        check_background(old, new)
    assert refused.value.errors == [f"background.image: cannot read {missing!r}: no such file"]
    check_background(old, config(mode="blur", image=missing))  # not used: not checked
    check_background(old, config(mode="replace"))  # the colour

    stage = make_stage(segmenter, mode="replace", color="#ff0000")
    before = run(stage, image, 0).image
    with pytest.raises(BackgroundError, match="no such file"):
        stage.configure(config(mode="replace", image=missing, color="#00ff00"))
    assert stage.settings == BackgroundSettings(mode="replace", color="#ff0000")
    after = run(stage, image, 1).image
    assert np.array_equal(after[room], before[room])

    # Through the config manager: refused before it is saved or applied.
    manager = ConfigManager(Config())
    manager.add_check(check_background)
    applied: list[Config] = []
    manager.subscribe(lambda _old, new: applied.append(new))
    with pytest.raises(ConfigError, match=r"background\.image"):
        manager.update({"background": {"mode": "replace", "image": missing}})
    assert manager.config == Config() and not applied


def test_bad_settings_are_refused_with_their_path(segmenter: PersonSegmenter) -> None:
    stage = make_stage(segmenter, mode="blur")
    bad = SimpleNamespace(
        background=SimpleNamespace(mode="sepia", blur=0.0, color="red", stability=1.0)
    )
    with pytest.raises(BackgroundError) as refused:
        stage.configure(bad)
    for path in ("mode", "blur", "color", "stability"):
        assert f"background.{path}:" in str(refused.value)
    assert stage.settings == BackgroundSettings(mode="blur")


def test_starting_with_an_unreadable_picture_uses_the_colour(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, person = scene
    stage = make_stage(segmenter, mode="replace", image=str(tmp_path / "x.png"), color="#ff0000")
    frame = run(stage, image)
    assert "no such file" in frame.meta["background"]["error"]
    room = inside(~person, 20)
    assert (np.abs(frame.image[room].astype(int) - RED) <= 1).mean() > 0.995


@pytest.mark.parametrize("size", [(641, 359), (32, 24), (1920, 1080)])
def test_odd_frame_sizes(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray], size: tuple[int, int]
) -> None:
    image = cv2.resize(scene[0], size, interpolation=cv2.INTER_AREA)
    stage = make_stage(segmenter, mode="blur")
    for seq in range(2):
        frame = run(stage, image, seq)
    assert frame.image.shape == (size[1], size[0], 3)
    coverage = frame.meta["background"]["coverage"]
    if size[0] >= 64:
        assert coverage == pytest.approx(scene[1].mean(), abs=0.03)
    else:
        assert 0.0 <= coverage <= 1.0


def test_grey_and_bgra_frames_come_out_bgr(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    image, person = scene
    stage = make_stage(segmenter, mode="replace", color="#ff0000")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    out = run(stage, grey).image
    assert out.shape == image.shape
    core = inside(person, 12)
    assert np.abs(out[core].astype(int) - grey[core][:, None]).mean() < 1.0
    assert run(stage, cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)).image.shape == image.shape


def test_a_wrong_frame_is_refused_and_the_stage_carries_on(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    image = scene[0]
    stage = make_stage(segmenter, mode="blur")
    good = run(stage, image, 0).image
    for bad in (image.astype(np.float32), image[:, :, :2], np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(BackgroundError, match="background: frame"):
            stage.process(Frame(bad, 1))
    assert np.array_equal(run(stage, image, 1).image, good)


def test_a_new_source_starts_the_matte_afresh(
    segmenter: PersonSegmenter, scene: tuple[np.ndarray, np.ndarray]
) -> None:
    image = scene[0]
    moved = np.roll(image, 300, axis=1)
    stage = make_stage(segmenter, mode="blur", stability=0.99)
    fresh = make_stage(segmenter, mode="blur", stability=0.99)
    run(stage, image, 0, source="a")
    expected = run(fresh, moved, 0, source="b").image
    assert np.array_equal(run(stage, moved, 1, source="b").image, expected)


def test_from_config_and_the_benchmark() -> None:
    stage = BackgroundStage.from_config(config(mode="blur"), backend=OnnxRuntimeBackend(threads=1))
    try:
        assert stage.name == "background" and stage.settings.mode == "blur"
    finally:
        stage.close()
    figures = bench_background((320, 180), seconds=0.2, modes=("blur",))
    assert figures["size"] == "320x180"
    for part in ("model", "matte", "composite", "total"):
        assert figures["blur"][part]["p50"] > 0
    assert figures["blur"]["total"]["p50"] >= figures["blur"]["model"]["p50"]
