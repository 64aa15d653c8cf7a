"""The pipeline stage: blur or replace what is behind the person (``config.background``).

Per frame: the work picture (``frames``), the model's person probability
(``segment``), the matte (``matte``), then the background and the blend (``compose``).
Mode ``off`` returns the frame untouched without running the model.

Settings change between frames (``configure``). A replacement picture is read when the
settings name it, never mid-stream; one that cannot be read is refused with the reason
and the stage keeps its previous settings. ``check_background`` makes the same check
for the config manager, so such a change is refused before it is saved. At start-up
(constructor, ``from_config``) an unreadable picture does not stop the camera: the
colour stands in and ``meta["background"]["error"]`` says why.

``frame.meta["background"]`` = {"mode": "blur" | "replace", "coverage": fraction of
the picture that is person, 0..1} (plus "error" as above). The output is BGR uint8 of the
input's size (a grey or BGRA input comes out BGR).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from appliance.background.compose import (
    Backdrop,
    blend,
    blurred_background,
    parse_color,
    read_picture,
)
from appliance.background.frames import BackgroundError, as_bgr, reduce, work_factor
from appliance.background.matte import Matte, upsample
from appliance.background.segment import PersonSegmenter
from appliance.config.errors import ConfigError, describe
from appliance.config.schema import BackgroundConfig
from appliance.frame import Frame
from appliance.pipeline.stage import Stage, settings_from
from appliance.runtime.base import Backend

log = logging.getLogger(__name__)

MAX_GAP_S = 1.0  # a pause longer than this starts the matte afresh (new scene likely)


@dataclass(frozen=True)
class BackgroundSettings:
    """The live settings (``config.background``); the schema mirrors these defaults."""

    mode: str = "off"
    blur: float = 0.03  # Gaussian sigma, fraction of the picture height
    image: str = ""
    color: str = "#30404a"
    stability: float = 0.6

    @classmethod
    def from_config(
        cls, config: Any, current: BackgroundSettings | None = None
    ) -> BackgroundSettings:
        """Fields of ``config.background`` where present, else ``current``'s (or defaults)."""
        return settings_from(cls, getattr(config, "background", None), current)

    def problems(self) -> list[str]:
        """What is wrong with these values, one ``background.field: why`` line each: the
        config schema's own checks, for settings that did not come through it."""
        try:
            BackgroundConfig.model_validate(dataclasses.asdict(self))
        except ValidationError as exc:
            return [f"background.{line}" for line in describe(exc, BackgroundConfig)]
        return []


def check_background(old: Any, new: Any) -> None:
    """Config-manager check: refuse a replace mode whose picture cannot be read.

    Run on every change while replace mode names a picture, not only when the picture
    changes: a config that points at a file gone since must not pass as valid.
    """
    section = getattr(new, "background", None)
    image = str(getattr(section, "image", "") or "")
    if getattr(section, "mode", "off") != "replace" or not image:
        return
    try:
        read_picture(image)
    except BackgroundError as exc:
        raise ConfigError([f"background.image: {exc}"]) from None


class BackgroundStage(Stage):
    """Background blur or replacement behind the people in the picture.

    ``segmenter`` defaults to the factory ``selfie_segmentation`` bundle on ``backend``
    (ONNX Runtime, one thread, when none is given); a bad bundle raises here, at
    construction.
    """

    name = "background"

    def __init__(
        self,
        segmenter: PersonSegmenter | None = None,
        settings: BackgroundSettings | None = None,
        *,
        backend: Backend | None = None,
        bundles_dir: Path | None = None,
        precision: str = "auto",
    ) -> None:
        settings = settings or BackgroundSettings()
        _refuse(settings.problems())
        if segmenter is None:
            segmenter = _load_segmenter(backend, bundles_dir, precision)
        self.segmenter = segmenter
        self.backend, self.precision = backend, precision
        self.matte = Matte()
        self.backdrop = Backdrop()
        self.settings = settings
        self.error: str | None = None  # why the colour stands in for the picture
        self.last_ms: dict[str, float] = {}  # model / matte / composite of the last frame
        self.last_matte: np.ndarray | None = None  # work-size uint8, 255 = person (overlays)
        self._scene: tuple[str, tuple[int, int], float] | None = None
        try:
            self._load_picture(settings)
        except BackgroundError as exc:
            self.error = str(exc)
            log.error("background.image: %s; the colour is used instead", exc)

    @classmethod
    def from_config(
        cls, config: Any, bundles_dir: Path | None = None, backend: Backend | None = None
    ) -> BackgroundStage:
        """The stage as ``config.background`` describes it. The model runs on ``backend``
        or, without one, the backend that ``config.vision`` (backend, threads) names."""
        if backend is None:
            from appliance.runtime.select import backend_for

            backend = backend_for(config)
        settings = BackgroundSettings.from_config(config)
        return cls(None, settings, backend=backend, bundles_dir=bundles_dir)

    def load_models(self, bundles_dir: Path) -> PersonSegmenter:
        """Verify and load the segmentation network from ``bundles_dir``; nothing changes."""
        return _load_segmenter(self.backend, bundles_dir, self.precision)

    def swap_models(self, segmenter: PersonSegmenter) -> None:
        """Run between frames: the new network takes over, the old one is closed."""
        old, self.segmenter = self.segmenter, segmenter
        old.close()

    def configure(self, config: Any) -> None:
        """Apply ``config.background``; BackgroundError, and nothing changed, if it is bad."""
        settings = BackgroundSettings.from_config(config, self.settings)
        _refuse(settings.problems())
        self._load_picture(settings)
        if settings.mode == "off":
            self.matte.reset()  # when it comes back, no matte from another scene
        self.settings = settings

    def _load_picture(self, settings: BackgroundSettings) -> None:
        """Read the replacement picture if the settings need one not yet read."""
        wanted = settings.image if settings.mode == "replace" else ""
        if not wanted or (wanted == self.backdrop.path and self.backdrop.picture is not None):
            return
        picture = read_picture(wanted)  # raises before anything changed
        self.backdrop.use(wanted, picture)
        self.error = None

    def process(self, frame: Frame) -> Frame:
        s = self.settings
        if s.mode == "off":
            return frame
        image = as_bgr(frame.image)
        self._follow_scene(frame, image.shape[0], image.shape[1])
        t0 = time.perf_counter()
        work = reduce(image, work_factor(image.shape[0]))
        prob = self.segmenter.segment(work)
        t1 = time.perf_counter()
        small = self.matte.update(prob, work, s.stability, self.segmenter.threshold)
        self.last_matte = small
        matte = upsample(small, frame.width, frame.height)
        t2 = time.perf_counter()
        frame.image = blend(image, self._behind(work, small, image.shape[1], image.shape[0]), matte)
        t3 = time.perf_counter()
        self.last_ms = {
            "model": (t1 - t0) * 1e3,
            "matte": (t2 - t1) * 1e3,
            "composite": (t3 - t2) * 1e3,
        }
        info: dict[str, Any] = {"mode": s.mode, "coverage": float(small.mean()) / 255.0}
        if self.error and s.mode == "replace":
            info["error"] = self.error
        frame.meta["background"] = info
        return frame

    def _follow_scene(self, frame: Frame, height: int, width: int) -> None:
        """Start the matte afresh on another source, another size or after a pause."""
        previous = self._scene
        self._scene = (frame.source, (height, width), frame.t_capture)
        if previous is None:
            return
        source, size, t = previous
        gap = frame.t_capture - t
        if (source, size) != (frame.source, (height, width)) or not 0.0 <= gap <= MAX_GAP_S:
            self.matte.reset()

    def _behind(self, work: np.ndarray, small: np.ndarray, width: int, height: int) -> np.ndarray:
        s = self.settings
        if s.mode == "blur":
            sigma = s.blur * work.shape[0]  # the radius in work-picture px
            return blurred_background(work, small, sigma, width, height)
        picture = self.backdrop.image(width, height) if s.image else None
        if picture is not None and self.backdrop.path == s.image:
            return picture
        return self.backdrop.fill(width, height, parse_color(s.color))

    def close(self) -> None:
        self.segmenter.close()


def _refuse(problems: list[str]) -> None:
    if problems:
        raise BackgroundError("; ".join(problems))


def _load_segmenter(
    backend: Backend | None, bundles_dir: Path | None, precision: str
) -> PersonSegmenter:
    if backend is None:
        from appliance.runtime.onnx import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(threads=1)
    root = Path(bundles_dir) / "selfie_segmentation" if bundles_dir is not None else None
    return PersonSegmenter.load(backend, root, precision)
