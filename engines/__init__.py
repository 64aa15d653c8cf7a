"""Model recipes and factory bundles.

Light on purpose: importing ``engines`` (and ``engines.cli``, and the detector
decoding it shares with the daemon, ``appliance.vision.anchors``) needs only NumPy,
and checking a bundle needs ONNX Runtime.
The converters (tensorflow, tf2onnx, ai-edge-litert, onnx) live in a separate
virtualenv (``make engines``) and are imported inside ``engines.build`` only.
"""

from __future__ import annotations

from pathlib import Path

#: Where the committed factory bundles live in a checkout.
BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"

__all__ = ["BUNDLES_DIR"]
