"""The face tracker over a sequence of pictures, for the codec's tools (encode, eval, the
basis recipe): what the camera's encoder is fed, frame by frame."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

POINTS = 468


def track_frames(images: Iterable[np.ndarray], fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """The largest face per picture: landmarks (n, 468, 3) and iris centres (n, 2, 2)
    float32 px, NaN where no face (or no iris) was found. The real tracker: ONNX Runtime
    FP32, one thread, default settings (smoothed landmarks, irises on)."""
    from appliance.frame import Frame
    from appliance.runtime.onnx import OnnxRuntimeBackend
    from appliance.vision.stage import FaceTrackingStage

    stage = FaceTrackingStage(OnnxRuntimeBackend(threads=1), precision="fp32")
    landmarks, irises = [], []
    try:
        for index, image in enumerate(images):
            faces = stage.process(Frame(image, index, index / fps)).meta.get("faces") or []
            points = np.full((POINTS, 3), np.nan, np.float32)
            iris = np.full((2, 2), np.nan, np.float32)
            if faces:
                face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                points = face.landmarks.astype(np.float32)
                if face.iris is not None:
                    iris = np.asarray(face.iris, np.float32)[:, 0, :2]
            landmarks.append(points)
            irises.append(iris)
    finally:
        stage.close()
    return np.stack(landmarks), np.stack(irises)
