"""Background blur and replacement behind the person (selfie segmentation).

Laid out by step: ``frames`` (accepted input, the reduced work picture), ``segment``
(the model's person probability), ``matte`` (islands, temporal stability, guided-filter
edges), ``compose`` (blurred or replacement background, the blend), ``stage`` (the
pipeline stage and the config check), ``bench`` (ms per frame by step).
"""

from appliance.background.frames import BackgroundError
from appliance.background.segment import PersonSegmenter
from appliance.background.stage import BackgroundSettings, BackgroundStage, check_background

__all__ = [
    "BackgroundError",
    "BackgroundSettings",
    "BackgroundStage",
    "PersonSegmenter",
    "check_background",
]
