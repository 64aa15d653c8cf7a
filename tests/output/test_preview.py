import cv2
import numpy as np

from appliance.capture.synthetic import SyntheticSource
from appliance.frame import Frame
from appliance.output.preview import JpegHub, PreviewSink
from appliance.vision.stage import FaceTrackingStage


def encoded(sink: PreviewSink, frame) -> np.ndarray:  # type: ignore[no-untyped-def]
    assert sink.consume(frame)
    jpeg = sink.hub.latest()
    assert jpeg is not None
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_overlay_draws_the_mesh_on_the_preview_only() -> None:
    image, _ = SyntheticSource(640, 360).render(10)
    frame = FaceTrackingStage().process(Frame(image=image, seq=1))
    (face,) = frame.meta["faces"]
    original = frame.image.copy()

    plain = encoded(PreviewSink(JpegHub(), quality=95, max_fps=1000), frame)
    drawn = encoded(PreviewSink(JpegHub(), quality=95, max_fps=1000, overlay=True), frame)

    assert (frame.image == original).all()  # other sinks still get the clean picture
    x0, y0, x1, y1 = (int(v) for v in face.box)
    inside = np.abs(drawn.astype(int) - plain.astype(int))[y0:y1, x0:x1].mean()
    outside = np.abs(drawn.astype(int) - plain.astype(int))[:, : max(1, x0 - 60)].mean()
    assert inside > 5 * max(outside, 0.1)
