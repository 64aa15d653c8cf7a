"""Faces on every frame: detection, 468-point mesh, irises, head pose, tracking.

Laid out by role: ``anchors`` + ``detect`` (short-range detector), ``landmarks``
(face mesh on a rotated region), ``iris``, ``pose`` (6-DoF from the canonical face),
``smoothing`` (One-Euro), ``tracker`` (several faces, stable ids), ``stage`` (the
pipeline stage), ``overlay`` (preview drawing), ``bench``.

Kept import-light: importing this package loads nothing (``engines`` imports
``appliance.vision.anchors`` and must stay NumPy-only).
"""
