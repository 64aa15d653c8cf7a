"""Capture sources chosen by URI: csi://N, v4l2:///dev/videoN, file://PATH, synthetic://."""

from appliance.capture.base import Source, SourceError
from appliance.capture.uri import open_source, parse_source_uri

__all__ = ["Source", "SourceError", "open_source", "parse_source_uri"]
