import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.capture.base import SourceError
from appliance.capture.file import FileSource
from appliance.capture.uri import open_source
from tests.conftest import shared_data


def make_clip(path: Path, frames: int = 6, size: tuple[int, int] = (96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_a_clip_plays_at_its_own_rate_and_loops(tmp_path: Path) -> None:
    source = FileSource(make_clip(tmp_path / "clip.avi"))
    with source:
        assert source.size == (96, 64)
        assert source.fps == pytest.approx(25.0)
        start = time.monotonic()
        levels = []
        for _ in range(9):
            frame = source.read(1.0)
            assert frame is not None
            levels.append(int(frame.image.mean()))
        elapsed = time.monotonic() - start
    assert levels[6] == levels[0] and levels[1] > levels[0]  # looped after 6 frames
    assert 0.25 < elapsed < 1.0  # 9 frames at 25 fps, paced


def test_a_still_image_repeats(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((30, 40, 3), 123, np.uint8))
    with FileSource(path, fps=50) as source:
        a, b = source.read(), source.read()
    assert a is not None and b is not None
    assert a.image.shape == (30, 40, 3) and (a.image == b.image).all() and b.seq == 2


@pytest.mark.parametrize("name", ["missing.mp4", "garbage.mp4", "garbage.png"])
def test_unreadable_files_raise_source_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.startswith("garbage"):
        path.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SourceError, match=name):
        FileSource(path).open()


def test_a_real_talking_head_clip_through_its_uri() -> None:
    clip = shared_data("clips/lp_d20.mp4")
    source = open_source(f"file://{clip}", 1280, 720, 30)
    with source:
        assert source.size == (480, 480)  # a file keeps its own size
        frame = source.read(1.0)
    assert frame is not None and frame.image.shape == (480, 480, 3)
    assert frame.image.std() > 10  # real picture content, not a blank frame
