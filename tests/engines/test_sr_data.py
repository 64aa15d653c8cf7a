"""Training pairs for the x2 network (engines/sr/data.py): the picture mix and the
scale augmentation the trainer and the quantization-aware fine-tuning share."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.sr.data import Degradation, PairSampler, load_training_y


def _pictures(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder, count in (("sr/yang91", 2), ("sr/bsd200", 1)):
        (root / folder).mkdir(parents=True)
        for k in range(count):
            picture = rng.integers(0, 256, (120, 100 + 20 * k, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / folder / f"{k}.png"), picture)
    (root / "clips").mkdir()
    return root


def test_scales_add_downscaled_copies_of_the_natural_pictures(tmp_path: Path) -> None:
    natural, faces = load_training_y(_pictures(tmp_path), scales=(1.0, 0.5))
    assert faces == []  # no clips here
    originals = [(120, 100), (120, 120), (120, 100)]
    assert [im.shape for im in natural] == [*originals, (60, 50), (60, 60), (60, 50)]
    assert all(im.dtype == np.float32 and im.min() >= 0.0 and im.max() <= 1.0 for im in natural)
    # a MATLAB-style antialiased reduction: the mean survives, the noise is smoothed
    assert np.isclose(natural[3].mean(), natural[0].mean(), atol=0.01)
    assert natural[3].std() < 0.7 * natural[0].std()


def _flat(side: int, value: float) -> np.ndarray:
    return np.full((side, side), value, np.float32)


def test_face_share_sets_how_often_faces_are_cut() -> None:
    natural = [_flat(200, 0.2), _flat(100, 0.2)]
    faces = [_flat(100, 0.8)]  # a sixth of the pixels
    clean = Degradation(clean_share=1.0)
    by_pixels = PairSampler(natural, faces, patch=16, degradation=clean)
    assert np.allclose(by_pixels.weights, [4 / 6, 1 / 6, 1 / 6])
    sampler = PairSampler(natural, faces, patch=16, degradation=clean, face_share=0.5)
    assert np.allclose(sampler.weights, [0.4, 0.1, 0.5])  # pixel-weighted within a group
    _, high = sampler.batch(400)
    from_faces = np.isclose(high.mean(axis=(1, 2, 3)), 0.8).mean()
    assert 0.4 < from_faces < 0.6


@pytest.mark.parametrize("faces", [[_flat(64, 0.5)], []])
def test_a_face_share_outside_0_to_1_is_refused(faces: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="face share"):
        PairSampler([_flat(64, 0.5)], faces, patch=16, face_share=1.5)
