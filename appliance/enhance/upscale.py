"""x2 super-resolution of a BGR picture: the network on luma, bicubic chroma.

The network (``sr_x2`` bundle) was trained on BT.601 studio-range luma (16..235, as the
published protocol uses), fed as the manifest says (luma / 255 - 0.5); the picture's own
chroma is upscaled bicubically, which the eye does not tell apart at x2. Any size goes
(tiles, ``appliance.enhance.tiles``); a grey picture comes out grey; BGRA keeps its
alpha (bicubic).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.enhance.tiles import upscale_tiled
from appliance.runtime.base import Backend, Model, ModelError
from appliance.runtime.bundle import factory_bundle_dir, load_manifest

BUNDLE = "sr_x2"
# BT.601 studio-range luma from 8-bit BGR, as the training data (engines.sr.imresize).
_Y_WEIGHTS = np.array([24.966, 128.553, 65.481], np.float32) / 255.0


class UpscaleError(ValueError):
    """A picture the upscaler cannot take (the message says what it got)."""


class Upscaler:
    """``upscale(image) -> image`` at twice the width and height."""

    def __init__(
        self, model: Model, tile: int, margin: int, scale: float = 1 / 255.0, offset: float = 0.0
    ) -> None:
        self.model = model
        self.tile, self.margin = tile, margin
        self.scale, self.offset = np.float32(scale), np.float32(offset)  # luma -> network
        self._input = model.inputs[0].name
        self._output = model.outputs[0].name

    @classmethod
    def load(
        cls, backend: Backend, bundles_dir: Path | None = None, precision: str = "auto"
    ) -> Upscaler:
        bundle = (bundles_dir or factory_bundle_dir()) / BUNDLE
        manifest = load_manifest(bundle)  # backend.load verifies every file
        post = manifest.get("postprocess") or {}
        if post.get("scale") != 2 or "tile" not in post or "margin" not in post:
            raise ModelError(f"{bundle}: not an x2 tiled super-resolution bundle")
        model = backend.load(bundle, precision)
        spec = manifest["inputs"][0]
        return cls(model, int(post["tile"]), int(post["margin"]), spec["scale"], spec["offset"])

    def upscale_luma(self, luma: np.ndarray) -> np.ndarray:
        """Studio-range luma (H, W) float32 -> (2H, 2W) float32, same range."""

        def run(batch: np.ndarray) -> np.ndarray:
            return self.model.run({self._input: batch})[self._output]

        plane = upscale_tiled(luma * self.scale + self.offset, run, self.tile, self.margin)
        return (plane - self.offset) / self.scale

    def upscale(self, image: np.ndarray) -> np.ndarray:
        image = _checked(image)
        if image.ndim == 2:
            luma = image.astype(np.float32) * np.float32(219.0 / 255.0) + np.float32(16.0)
            return _to_u8((self.upscale_luma(luma) - 16.0) * (255.0 / 219.0))
        alpha = image[..., 3] if image.shape[2] == 4 else None
        bgr = np.ascontiguousarray(image[..., :3])
        luma = bgr.astype(np.float32) @ _Y_WEIGHTS + np.float32(16.0)
        height, width = bgr.shape[:2]
        size = (2 * width, 2 * height)
        base = cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC)
        ycrcb = cv2.cvtColor(base, cv2.COLOR_BGR2YCrCb)  # full-range Y: rescale ours into it
        sharp = (self.upscale_luma(luma) - 16.0) * (255.0 / 219.0)
        ycrcb[..., 0] = _to_u8(sharp)
        out = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)
        if alpha is not None:
            out = np.dstack([out, cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC)])
        return out


def _to_u8(plane: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(plane), 0, 255).astype(np.uint8)


def _checked(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise UpscaleError(f"expected a picture (numpy array), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise UpscaleError(f"expected 8-bit pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise UpscaleError(f"expected grey, BGR or BGRA, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise UpscaleError(f"empty picture {image.shape}")
    return image
