"""Source URIs, as jetson-utils spells them: the transport is configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.capture.base import Source, SourceError

SCHEMES = ("csi", "v4l2", "file", "synthetic")


@dataclass(frozen=True)
class SourceSpec:
    scheme: str
    target: str  # sensor index, device path or file path; "" for synthetic
    uri: str


def parse_source_uri(uri: str) -> SourceSpec:
    """Parse ``csi://0``, ``v4l2:///dev/video0``, ``/dev/video0``, ``file://x.mp4``, ``synthetic://``.

    Raises ValueError with the accepted forms when the URI is not one of them.
    """
    text = uri.strip()
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text, f"v4l2://{text}")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"unsupported source {uri!r}: use csi://N, v4l2:///dev/videoN, file://PATH or synthetic://"
        )
    if scheme == "csi":
        if not rest.isdigit():
            raise ValueError(f"csi source needs a sensor index, e.g. csi://0, got {uri!r}")
    elif scheme == "v4l2":
        if not rest.startswith("/dev/"):
            raise ValueError(
                f"v4l2 source needs a device path, e.g. v4l2:///dev/video0, got {uri!r}"
            )
    elif scheme == "file":
        if not rest:
            raise ValueError("file source needs a path, e.g. file:///data/clip.mp4")
    elif rest not in ("", "/"):
        raise ValueError(f"synthetic source takes no target, got {uri!r}")
    return SourceSpec(scheme, rest if scheme != "synthetic" else "", text)


def open_source(spec: SourceSpec | str, width: int, height: int, fps: float) -> Source:
    """Build (not open) the source for a URI. Imports of hardware backends stay lazy."""
    if isinstance(spec, str):
        spec = parse_source_uri(spec)
    if spec.scheme == "synthetic":
        from appliance.capture.synthetic import SyntheticSource

        return SyntheticSource(width=width, height=height, fps=fps, uri=spec.uri)
    if spec.scheme == "file":
        from appliance.capture.file import FileSource

        # A file keeps its own size and rate: stretching a 480x480 clip to 16:9 helps nobody.
        return FileSource(Path(spec.target), uri=spec.uri)
    if spec.scheme == "v4l2":
        from appliance.capture.v4l2 import V4L2Source

        return V4L2Source(spec.target, width=width, height=height, fps=fps, uri=spec.uri)
    if spec.scheme == "csi":
        from appliance.capture.csi import CSISource

        return CSISource(int(spec.target), width=width, height=height, fps=fps, uri=spec.uri)
    raise SourceError(f"no backend for {spec.uri}")
