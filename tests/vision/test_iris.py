"""Irises: the one-eye model's mirror convention, and plausible points on real faces."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from appliance.vision.iris import IrisModel
from appliance.vision.tracker import FaceTracker
from tests.vision.helpers import clip_frame, converge, inter_ocular

FRAMES = [("lp_d6", 300), ("lp_d10", 100), ("lp_d14", 200), ("lp_d20", 50), ("lp_d11", 20)]


@pytest.mark.parametrize(("clip", "index"), FRAMES)
def test_eye_contour_corners_meet_the_mesh(
    make_tracker: Callable[..., FaceTracker], iris_model: IrisModel, clip: str, index: int
) -> None:
    """The network's contour points 0 and 8 are the outer and inner eye corners. With the
    right eye kept and the left one mirrored (and mirrored back), they land on the mesh's
    corners of both eyes: a wrong mirror puts the outer corner on the inner one."""
    image = clip_frame(clip, index)
    lm = converge(make_tracker(smoothing=False), image, frames=3)
    result = iris_model.run(image, lm)
    iod = inter_ocular(lm)
    corners = {0: (33, 133), 1: (263, 362)}  # eye -> (outer, inner) mesh landmarks
    for eye, (outer, inner) in corners.items():
        c = result.contour[eye]
        assert np.linalg.norm(c[0] - lm[outer, :2]) / iod < 0.08
        assert np.linalg.norm(c[8] - lm[inner, :2]) / iod < 0.08
    # Each iris centre lies between its eye's corners, and the radius is a human iris's:
    # about 5.9 mm against ~90 mm between the outer eye corners (0.065; measured on
    # these frames 0.040-0.071).
    for eye, (outer, inner) in corners.items():
        a, b = lm[outer, :2], lm[inner, :2]
        along = float(np.dot(result.iris[eye, 0] - a, b - a) / np.dot(b - a, b - a))
        assert 0.2 < along < 0.8
        print(f"{clip}#{index} eye {eye}: radius {result.radius[eye] / iod:.3f} IOD")
        assert 0.03 < result.radius[eye] / iod < 0.09
    assert result.iris.shape == (2, 5, 2) and result.iris.dtype == np.float32
