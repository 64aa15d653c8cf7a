"""Alignment: auto-framing (virtual pan/tilt/zoom) and levelling, as one affine warp.

``AlignStage`` is the pipeline stage; ``framing`` and ``level`` hold the pure logic
(no images), so they can be tested with synthetic face measurements.
"""

from appliance.align.settings import AlignSettings
from appliance.align.stage import AlignStage

__all__ = ["AlignSettings", "AlignStage"]
