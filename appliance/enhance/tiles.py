"""Run a fixed-size x2 network over a picture of any size, tile by tile.

The network's input is a fixed square (static shapes: what a TensorRT engine is built
for, and the same bytes on every backend). Each tile carries a ``margin`` of context
on every side, at least the network's receptive radius, and only its core is kept, so
the stitched result equals a whole-picture run except at the picture's edges, which
are reflected instead of zero-padded. A picture smaller than a tile is padded the same
way, so there is no minimum size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Network = Callable[[np.ndarray], np.ndarray]  # (1, 1, T, T) float32 -> (1, 1, sT, sT)


def upscale_tiled(
    plane: np.ndarray, network: Network, tile: int, margin: int, scale: int = 2
) -> np.ndarray:
    """``plane`` (H, W) float32 -> (scale*H, scale*W) float32 through ``network``."""
    if plane.ndim != 2:
        raise ValueError(f"expected one plane (H, W), got shape {plane.shape}")
    core = tile - 2 * margin
    if core <= 0:
        raise ValueError(f"tile {tile} leaves no core inside a {margin} px margin")
    height, width = plane.shape
    rows, cols = -(-height // core), -(-width // core)
    padded = np.pad(
        plane,
        ((margin, rows * core - height + margin), (margin, cols * core - width + margin)),
        mode="reflect" if min(height, width) > 1 else "edge",
    )
    out = np.empty((rows * core * scale, cols * core * scale), np.float32)
    batch = np.empty((1, 1, tile, tile), np.float32)
    m, c = margin * scale, core * scale
    for r in range(rows):
        for k in range(cols):
            batch[0, 0] = padded[r * core : r * core + tile, k * core : k * core + tile]
            result = network(batch)[0, 0]
            out[r * c : (r + 1) * c, k * c : (k + 1) * c] = result[m : m + c, m : m + c]
    return out[: height * scale, : width * scale]
