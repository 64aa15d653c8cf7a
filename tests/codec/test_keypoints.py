"""The keypoint codec's representation, on landmarks the real tracker finds.

The face is the synthetic source's (the astronaut): no frame of it went into the shipped
basis (learned from ../shared/data/clips), so the round-trip figures are held-out ones.
On the clips themselves, leave-one-clip-out, K=32 gives 0.23 px mean, 0.50 px p95
(appliance/codec/data/README.md); a face tracked at 640x480 is about half their size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest

from appliance.capture.synthetic import SyntheticSource
from appliance.codec.keypoints import (
    DEFAULT_MODEL,
    GAZE_SIZE,
    POSE_SIZE,
    KeypointCodecError,
    KeypointCodecModel,
    KeypointDecoder,
    KeypointEncoder,
    Packet,
    normalize,
    rotation_matrix,
    rotation_vector,
)
from appliance.frame import Frame
from appliance.runtime.onnx import OnnxRuntimeBackend
from appliance.vision.pose import rigid_points
from appliance.vision.stage import FaceTrackingStage

W, H = 640, 480


@dataclass(frozen=True)
class Tracked:
    landmarks: list[np.ndarray]  # (468, 3) float32 per frame
    mouth_open: list[float]


@pytest.fixture(scope="module")
def tracked() -> Tracked:
    """30 frames over 8 s of the talking synthetic face, through the real tracker."""
    stage = FaceTrackingStage(OnnxRuntimeBackend(threads=1), precision="fp32")
    source = SyntheticSource(W, H)
    landmarks, mouth = [], []
    try:
        for index in range(0, 240, 8):
            image, truth = source.render(index)
            faces = stage.process(Frame(image, index, index / 30.0)).meta["faces"]
            assert len(faces) == 1
            landmarks.append(faces[0].landmarks)
            mouth.append(float(truth["mouth_open"]))
    finally:
        stage.close()
    return Tracked(landmarks, mouth)


@pytest.fixture(scope="module")
def model() -> KeypointCodecModel:
    return KeypointCodecModel.load()


def pair(
    model: KeypointCodecModel, reference: np.ndarray
) -> tuple[KeypointEncoder, KeypointDecoder]:
    encoder, decoder = KeypointEncoder(model, W, H), KeypointDecoder(model, W, H)
    decoder.set_reference(encoder.set_reference(reference))
    return encoder, decoder


def interocular(landmarks: np.ndarray) -> float:
    return float(
        np.linalg.norm(landmarks[[33, 133], :2].mean(0) - landmarks[[362, 263], :2].mean(0))
    )


def test_shipped_basis_is_small_orthonormal_float32(model: KeypointCodecModel) -> None:
    assert DEFAULT_MODEL.stat().st_size < 300_000
    assert model.k == 32 and model.size == POSE_SIZE + 32 + GAZE_SIZE
    assert np.allclose(model.basis @ model.basis.T, np.eye(model.k), atol=1e-5)
    with np.load(DEFAULT_MODEL) as data:
        assert data["basis"].dtype == np.float32 and data["mean"].dtype == np.float32


def test_round_trip_on_a_face_the_basis_never_saw(
    tracked: Tracked, model: KeypointCodecModel
) -> None:
    encoder, decoder = pair(model, tracked.landmarks[0])
    errors, relative = [], []
    for landmarks in tracked.landmarks:
        decoded = decoder.decode(encoder.encode(landmarks))
        assert decoded.shape == (468, 2) and decoded.dtype == np.float32
        error = np.linalg.norm(decoded - landmarks[:, :2], axis=1)
        errors.append(error)
        relative.append(error.mean() / interocular(landmarks) * 100.0)
    flat = np.concatenate(errors)
    assert max(tracked.mouth_open) > 0.5  # the mouth did move: expression was coded
    assert flat.mean() < 0.2 and np.percentile(flat, 95) < 0.45  # px; measured 0.12, 0.25
    assert np.mean(relative) < 0.35 and max(relative) < 0.6  # % of IOD; measured 0.20, 0.28


def test_predicted_decoding_equals_intra_decoding_exactly(
    tracked: Tracked, model: KeypointCodecModel
) -> None:
    encoder, decoder = pair(model, tracked.landmarks[0])
    intra_encoder, intra_decoder = pair(model, tracked.landmarks[0])
    kinds = []
    for landmarks in tracked.landmarks:
        packet = encoder.encode(landmarks)
        kinds.append(packet.intra)
        intra = intra_encoder.encode(landmarks, intra=True)
        assert np.array_equal(decoder.decode(packet), intra_decoder.decode(intra))
        # and the encoder's closed loop: its own state is the decoder's, to the bit
        assert np.array_equal(encoder.previous, decoder.previous)
    assert kinds[0] and not any(kinds[1:])


def similarity(
    landmarks: np.ndarray, shift: tuple[float, float], scale: float, deg: float
) -> np.ndarray:
    """Rotate (in the image plane) and scale about the face centre, then shift."""
    points = landmarks.astype(np.float64)
    centre = points.mean(axis=0)
    a = math.radians(deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0, 0, 1]])
    return scale * (points - centre) @ rot.T + centre + np.array([*shift, 0.0])


def test_head_motion_goes_to_the_pose_part(tracked: Tracked, model: KeypointCodecModel) -> None:
    base = tracked.landmarks[10]
    encoder = KeypointEncoder(model, W, H)
    encoder.set_reference(tracked.landmarks[0])
    q0 = encoder.encode(base, intra=True).symbols
    moved = similarity(base, (23.0, -11.0), 1.3, -12.0)
    q1 = encoder.encode(moved, intra=True).symbols
    assert np.abs(q1[POSE_SIZE:] - q0[POSE_SIZE:]).max() <= 1  # expression: unchanged
    unit = max(W, H) / 512.0
    place0, place1 = model.placement(q0, W, H), model.placement(q1, W, H)
    assert place1.scale / place0.scale == pytest.approx(1.3, abs=2e-3)
    # the added rotation is the in-plane one, counter-clockwise as seen: roll goes up
    a = math.radians(-12.0)
    in_plane = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    assert np.allclose(place1.rotation @ place0.rotation.T, in_plane, atol=2e-3)
    assert place1.roll - place0.roll == pytest.approx(12.0, abs=0.5)
    rigid_centre = moved[rigid_points()].mean(axis=0)[:2]  # the fit's centre, moved along
    assert np.allclose(place1.centre, rigid_centre, atol=0.07 * unit)  # step/2 = 0.0625
    decoded = model.synthesize(q1, W, H, encoder.reference)
    assert np.abs(decoded - moved[:, :2]).mean() < 0.4


def test_expression_leaves_the_pose_alone(tracked: Tracked, model: KeypointCodecModel) -> None:
    base = tracked.landmarks[10].astype(np.float64)
    opened = base.copy()
    moving = np.setdiff1d(np.arange(468), rigid_points())
    jaw = moving[base[moving, 1] > base[13, 1]]  # below the upper lip's centre
    opened[jaw, 1] += 6.0
    encoder = KeypointEncoder(model, W, H)
    encoder.set_reference(base)
    q0, q1 = (encoder.encode(x, intra=True).symbols for x in (base, opened))
    assert np.array_equal(q0[:POSE_SIZE], q1[:POSE_SIZE])
    assert np.abs(q1[POSE_SIZE:]).sum() > 20 and not q0[POSE_SIZE:].any()


def test_symbols_stay_within_their_ranges(tracked: Tracked, model: KeypointCodecModel) -> None:
    encoder = KeypointEncoder(model, W, H)
    reference = encoder.set_reference(tracked.landmarks[0])
    assert reference.dtype == np.int32 and reference.shape == (1404,)
    assert np.abs(reference).max() < 2**15
    packets = [encoder.encode(x) for x in tracked.landmarks]
    for packet in packets:
        assert packet.symbols.dtype == np.int32 and packet.symbols.shape == (model.size,)
    absolute = np.cumsum([p.symbols for p in packets], axis=0)
    assert np.all(np.abs(absolute) <= model.bounds)
    # predicted values are small: the 8-frame gaps here are bigger than a real stream's
    assert np.percentile(np.abs([p.symbols[POSE_SIZE:] for p in packets[1:]]), 90) < 16
    huge = similarity(tracked.landmarks[0], (5000.0, 0.0), 500.0, 0.0)
    clamped = encoder.encode(huge, intra=True).symbols
    assert np.all(np.abs(clamped) <= model.bounds)
    assert abs(clamped[0]) == model.bounds[0] and abs(clamped[2]) == model.bounds[2]


def test_bad_input_is_refused_clearly(tracked: Tracked, model: KeypointCodecModel) -> None:
    encoder = KeypointEncoder(model, W, H)
    with pytest.raises(KeypointCodecError, match="no reference"):
        encoder.encode(tracked.landmarks[0])
    encoder.set_reference(tracked.landmarks[0])
    nan = tracked.landmarks[1].copy()
    nan[5, 0] = np.nan
    with pytest.raises(KeypointCodecError, match="non-finite"):
        encoder.encode(nan)
    with pytest.raises(KeypointCodecError, match=r"\(468, 3\)"):
        encoder.encode(tracked.landmarks[1][:, :2])
    with pytest.raises(KeypointCodecError, match=r"\(468, 3\)"):
        encoder.encode(np.zeros((100, 3)))
    decoder = KeypointDecoder(model, W, H)
    decoder.set_reference(encoder.set_reference(tracked.landmarks[0]))
    packet = encoder.encode(tracked.landmarks[1])
    with pytest.raises(KeypointCodecError, match="without a previous"):
        decoder.decode(Packet(False, packet.symbols))
    with pytest.raises(KeypointCodecError, match="bounds"):
        decoder.decode(Packet(True, model.bounds.astype(np.int32) + 1))
    with pytest.raises(KeypointCodecError, match="integers"):
        decoder.decode(Packet(True, packet.symbols.astype(np.float32)))
    with pytest.raises(KeypointCodecError, match="frame size"):
        KeypointEncoder(model, 0, H)


def test_normalization_is_exactly_invertible(tracked: Tracked) -> None:
    landmarks = tracked.landmarks[5].astype(np.float64)
    centre, scale, rotation, shape = normalize(landmarks)
    rigid = shape[rigid_points()]
    back = scale * (shape - rigid.mean(axis=0)) @ rotation.T + centre
    assert np.allclose(back, landmarks, atol=1e-9)
    assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.linalg.det(rotation) > 0
    for vector in ([0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [1e-10, 0.0, 0.0], [0.0, 2.5, 0.0]):
        assert np.allclose(rotation_vector(rotation_matrix(np.array(vector))), vector)


def test_encoder_is_fast(tracked: Tracked, model: KeypointCodecModel) -> None:
    encoder = KeypointEncoder(model, W, H)
    encoder.set_reference(tracked.landmarks[0])
    times = []
    for landmarks in tracked.landmarks * 3:
        start = time.perf_counter()
        encoder.encode(landmarks)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 2e-3  # the budget after landmarks; measured ~0.15 ms


def test_gaze_travels_with_the_keypoints_and_places_the_irises(talking_head) -> None:
    from appliance.codec.keypoints import IRIS_POINTS

    model = KeypointCodecModel.load()
    width, height = talking_head.size
    encoder = KeypointEncoder(model, width, height)
    decoder = KeypointDecoder(model, width, height)
    decoder.set_reference(encoder.set_reference(talking_head.landmarks[0]))
    errors = []
    for landmarks, iris in zip(talking_head.landmarks, talking_head.iris, strict=True):
        decoder.decode(encoder.encode(landmarks, iris=iris))
        assert decoder.previous is not None and decoder.reference is not None
        points = model.render_points(decoder.previous, width, height, decoder.reference)
        assert points.shape == (468 + IRIS_POINTS, 3)
        centres = points[[468, 473], :2]
        errors.append(np.linalg.norm(centres - iris, axis=1))
    # decoded on the decoded eye corners: within a pixel of where the tracker saw them
    assert float(np.mean(errors)) < 1.0
    # without an iris the gaze holds still (no jump to straight ahead)
    held = encoder.encode(talking_head.landmarks[5], iris=None)
    assert not held.intra and np.all(held.symbols[-GAZE_SIZE:] == 0)
