"""``appliance bench align`` and ``appliance align demo`` produce what they promise."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from appliance.align.bench import bench_align, format_align
from appliance.align.demo import write_demo
from tests.conftest import shared_data


def test_bench_align_reports_every_feature() -> None:
    result = bench_align(640, 360, frames=16, background_s=0.3)
    assert set(result["ms"]) == {
        "framing + levelling",
        "frontalization",
        "eye contact",
        "align stage, all on",
    }
    assert result["faces_per_frame"] == 1.0
    for ms in result["ms"].values():
        assert math.isfinite(ms["p50"]) and 0 < ms["p50"] <= ms["p99"]
    for mode in ("blur", "replace"):
        assert result["background"][mode]["total"]["p50"] > 0
    text = format_align(result)
    assert "eye contact" in text and "background stage" in text


def test_demo_writes_a_before_after_pair_per_feature(tmp_path: Path) -> None:
    data = shared_data("clips").parent
    written = write_demo(tmp_path, data)
    names = {p.name for p in written}
    features = ("framing", "levelling", "frontalization", "eye-contact")
    assert names == {f"align-{n}.jpg" for n in (*features, "background-blur", "background-replace")}
    for path in written:
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] == 360
        half = (image.shape[1] - 8) // 2
        before, after = image[60:, :half].astype(int), image[60:, -half:].astype(int)
        assert np.abs(before - after).mean() > 0.5, path.name  # the feature did something
