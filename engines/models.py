"""One small spec per model: where it comes from, how to feed it, how it is gated.

Everything the runtime needs to preprocess without guessing ends up in the
bundle's manifest from here (see ``engines/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Bundle version (``ModelSpec.version``): the mediapipe release the weights come
# from, then the recipe revision of that model (``ModelSpec.revision``). Bump a
# model's revision whenever the recipe changes what it writes for it; revisions are
# per model so a change to one leaves the others' bundles byte-identical.

#: ``created`` in every manifest: fixed with the recipe revision (no wall clock),
#: so two builds from the same inputs give byte-identical bundles.
CREATED = "2025-01-15T00:00:00Z"

SOURCE_PACKAGE = "mediapipe"
SOURCE_VERSION = "0.10.21"
# The cp311 manylinux x86_64 wheel; any platform's wheel carries the same .tflite
# files, but the pin is for exactly this file (sha256 also in source-wheel.txt).
SOURCE_WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
SOURCE_WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
LICENCE = "Apache-2.0"

# uint8 RGB -> float: x * scale + offset.
UNIT = (1.0 / 255.0, 0.0)  # [0, 1]
SIGNED = (2.0 / 255.0, -1.0)  # [-1, 1]


@dataclass(frozen=True)
class InputSpec:
    name: str  # tensor name, same in TFLite and ONNX
    height: int
    width: int
    scale: float
    offset: float
    crop: str  # which crop feeds it: "letterbox" | "resize" (whole frame) | "face" | "eye"
    roi: str  # how the runtime should cut the image (MediaPipe's own recipe)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    description: str
    units: str
    atol: float  # allowed max |ONNX FP32 - TFLite| on real inputs, in `units`


@dataclass(frozen=True)
class Gate:
    metric: str  # "box_iou" | "nme_iod" | "nme_eye_width" | "mask_iou"
    threshold: float
    higher_is_better: bool
    description: str


@dataclass(frozen=True)
class MixedPrecision:
    """INT8 with a few layers left float, chosen on the selection split only.

    ``engines.sensitivity`` ranks the model's layers by how much the gate metric on
    the selection frames gains when that one layer stays float, then leaves the best
    ones float until ``target`` (a margin past the gate) is met, at most
    ``max_float_fraction`` of the convolution layers. Each calibration in
    ``calibrations`` (``engines.quantize.CALIBRATIONS``) is tried; the one that needs
    the fewest float layers wins (then the better selection figure).
    """

    target: float
    max_float_fraction: float = 0.10
    calibrations: tuple[str, ...] = ("minmax",)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    member: str  # path of the .tflite inside the wheel
    tflite_sha256: str
    input: InputSpec
    outputs: tuple[OutputSpec, ...]
    gate: Gate
    # Outputs whose NHWC layout tf2onnx should turn into NCHW (image-shaped ones).
    nchw_outputs: tuple[str, ...] = ()
    # INT8: these nodes and everything after them up to the outputs stay float.
    float_tail: tuple[str, ...] = ()
    # INT8: leave the most sensitive layers float, found on the selection split.
    mixed_precision: MixedPrecision | None = None
    postprocess: dict[str, Any] = field(default_factory=dict)
    # Recipe revision of this model's bundle (the suffix of its version).
    revision: int = 1

    @property
    def version(self) -> str:
        return f"{SOURCE_VERSION}-{self.revision}"


FACE_DETECTION = ModelSpec(
    name="face_detection",
    title="MediaPipe face detection, short range (BlazeFace, faces within ~2 m)",
    member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
    tflite_sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    input=InputSpec(
        "input",
        128,
        128,
        *SIGNED,
        crop="letterbox",
        roi="whole frame, letterboxed to 128x128 keeping aspect ratio, zero padding",
    ),
    outputs=(
        OutputSpec(
            "regressors",
            "per anchor: box centre dx, dy, width, height, then 6 keypoints (x, y): "
            "right eye, left eye, nose tip, mouth, right ear, left ear; pixels of the "
            "128x128 input, centre and keypoints relative to the anchor centre",
            "px",
            0.02,
        ),
        OutputSpec("classificators", "per anchor face logit (sigmoid -> score)", "logit", 0.02),
    ),
    gate=Gate(
        "box_iou",
        0.90,
        True,
        "mean IoU of the top-scoring decoded box, INT8 vs FP32 (frames with a face)",
    ),
    # The regression heads: their 16 outputs span 18..196 px per channel, one int8
    # scale for all costs ~1.5 px steps; they are 4 tiny 1x1 convs, cheap in FP16.
    float_tail=("regressor_8", "regressor_16", "classificator_8", "classificator_16"),
    postprocess={
        "anchors": {
            "input_size": [128, 128],
            "strides": [8, 16, 16, 16],
            "anchors_per_layer": 2,
            "offset": 0.5,
            "fixed_size": True,
            "count": 896,
        },
        "box_scale": 128.0,
        "score": "sigmoid(clip(logit, -100, 100))",
        "min_score": 0.5,
        "nms": {"kind": "weighted", "iou": 0.3},
    },
    revision=2,  # 2: 7-bit INT8 weights (same outputs with and without VNNI), gate-judged reference
)

FACE_MESH = ModelSpec(
    name="face_mesh",
    title="MediaPipe face mesh: 468 3-D landmarks (face_landmark.tflite, no attention)",
    member="mediapipe/modules/face_landmark/face_landmark.tflite",
    tflite_sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    input=InputSpec(
        "input_1",
        192,
        192,
        *UNIT,
        crop="face",
        roi="square crop around the detection box scaled 1.5x (or last frame's landmarks), "
        "rotated so the eye keypoints are horizontal, resized to 192x192",
    ),
    outputs=(
        OutputSpec(
            "conv2d_21",
            "468 landmarks x (x, y, z); x, y in pixels of the 192x192 crop, "
            "z relative depth in the same scale",
            "px",
            0.01,
        ),
        OutputSpec("conv2d_31", "face presence logit (sigmoid -> score)", "logit", 0.01),
    ),
    gate=Gate(
        "nme_iod",
        0.01,
        False,
        "mean landmark distance INT8 vs FP32 / inter-ocular distance (landmarks 33, 263)",
    ),
    postprocess={"landmarks": 468, "dims": 3, "eye_corners": [33, 263], "presence_min": 0.5},
    revision=2,  # 2: 7-bit INT8 weights (same outputs with and without VNNI), gate-judged reference
)

IRIS = ModelSpec(
    name="iris",
    title="MediaPipe iris landmarks: 71 eye contour + 5 iris points",
    member="mediapipe/modules/iris_landmark/iris_landmark.tflite",
    tflite_sha256="d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    input=InputSpec(
        "input_1",
        64,
        64,
        *UNIT,
        crop="eye",
        roi="square crop centred on the eye corners (mesh landmarks 33/133, or 362/263 "
        "mirrored horizontally: the model knows one eye only), side 2.3x corner distance, "
        "corners horizontal, resized to 64x64",
    ),
    outputs=(
        OutputSpec(
            "output_eyes_contours_and_brows",
            "71 eye contour and brow points x (x, y, z), pixels of the 64x64 crop",
            "px",
            0.01,
        ),
        OutputSpec(
            "output_iris",
            "5 iris points x (x, y, z): centre then 4 on the rim, pixels of the 64x64 crop",
            "px",
            0.01,
        ),
    ),
    gate=Gate(
        "nme_eye_width",
        0.02,
        False,
        "mean iris-point distance INT8 vs FP32 / eye width (contour points 0 and 8)",
    ),
    postprocess={"contour_points": 71, "iris_points": 5, "dims": 3},
    revision=2,  # 2: 7-bit INT8 weights (same outputs with and without VNNI), gate-judged reference
)

SELFIE_SEGMENTATION = ModelSpec(
    name="selfie_segmentation",
    title="MediaPipe selfie segmentation (general, 256x256): person probability",
    member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    tflite_sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    input=InputSpec(
        "input_1",
        256,
        256,
        *UNIT,
        crop="resize",
        roi="whole frame resized to 256x256 (no letterbox)",
    ),
    outputs=(
        OutputSpec(
            "activation_10",
            "person probability per pixel, 1x1x256x256 (NCHW)",
            "probability",
            1e-3,
        ),
    ),
    gate=Gate("mask_iou", 0.95, True, "mean IoU of the masks thresholded at 0.5, INT8 vs FP32"),
    nchw_outputs=("activation_10",),
    # Fully INT8 it misses its gate (0.926): the error builds up all along the
    # network. A 0.01 margin over the gate on the selection split, <= 10% of the 55
    # convolution layers float.
    mixed_precision=MixedPrecision(
        target=0.96, calibrations=("minmax", "percentile-99.9", "percentile-99.99")
    ),
    postprocess={"threshold": 0.5},
    # 2: INT8 with sensitivity-chosen float layers; 3: 7-bit INT8 weights, gate-judged
    # reference
    revision=3,
)

MODELS: dict[str, ModelSpec] = {
    m.name: m for m in (FACE_DETECTION, FACE_MESH, IRIS, SELFIE_SEGMENTATION)
}
