import pytest

from appliance.capture.discovery import auto_candidates, candidates_for
from appliance.capture.uri import parse_source_uri


@pytest.mark.parametrize(
    ("uri", "scheme", "target"),
    [
        ("csi://0", "csi", "0"),
        ("v4l2:///dev/video2", "v4l2", "/dev/video2"),
        ("/dev/video1", "v4l2", "/dev/video1"),
        ("file:///data/clip.mp4", "file", "/data/clip.mp4"),
        ("file://clip.mp4", "file", "clip.mp4"),
        ("synthetic://", "synthetic", ""),
    ],
)
def test_accepted_forms(uri: str, scheme: str, target: str) -> None:
    spec = parse_source_uri(uri)
    assert (spec.scheme, spec.target) == (scheme, target)


@pytest.mark.parametrize(
    "uri",
    ["rtsp://cam/stream", "csi://front", "v4l2://video0", "file://", "webcam", "synthetic://x"],
)
def test_rejected_forms_name_the_accepted_ones(uri: str) -> None:
    with pytest.raises(ValueError, match=r"csi|v4l2|file|synthetic"):
        parse_source_uri(uri)


def test_auto_ranks_csi_then_usb_then_fallback() -> None:
    nodes = [
        ("/dev/video0", "vi-output, imx219 9-0010"),
        ("/dev/video1", "vi-output, imx219 10-0010"),
        ("/dev/video2", "HD Pro Webcam C920"),
    ]
    assert auto_candidates(lambda: nodes) == [
        "csi://0",
        "csi://1",
        "v4l2:///dev/video2",
        "synthetic://",
    ]
    assert auto_candidates(lambda: []) == ["synthetic://"]


def test_explicit_source_comes_before_its_fallbacks() -> None:
    ranked = candidates_for("v4l2:///dev/video0", ["synthetic://", "v4l2:///dev/video0"])()
    assert ranked == ["v4l2:///dev/video0", "synthetic://"]
