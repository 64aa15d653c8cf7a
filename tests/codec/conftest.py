"""A real talking-head clip and the tracker's landmarks on it, for the codec's tests."""

from __future__ import annotations

import pytest

from appliance.codec.evaluate import Clip, load_clip
from tests.conftest import SHARED_DATA as DATA
from tests.conftest import shared_data

__all__ = ["DATA", "read_clip"]


def read_clip(name: str, count: int) -> Clip:
    """The clip's first ``count`` frames; its landmarks tracked once, cached in .cache/codec.
    Skipped without ../shared/data, a failure under CI=true."""
    return load_clip(shared_data(f"clips/{name}.mp4"), count)


@pytest.fixture(scope="session")
def talking_head() -> Clip:
    """lp_d20: 480x480, 25 fps; speaks, turns and tilts the head within 120 frames."""
    return read_clip("lp_d20", 120)
