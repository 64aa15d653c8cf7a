"""The frame path: stages, sinks, newest-frame-wins queues and their statistics."""

from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.queue import LatestQueue
from appliance.pipeline.stage import Passthrough, Sink, Stage

__all__ = ["LatestQueue", "Passthrough", "Pipeline", "Sink", "Stage"]
