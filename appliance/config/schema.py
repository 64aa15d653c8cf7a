"""The one configuration schema: the config file, the web API and MQTT all go through it.

Fields marked ``restart=True`` take effect at the next start; every other field is
applied live, between frames.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import JsonDict

from appliance.audio.uri import parse_audio_sink, parse_audio_source
from appliance.capture.uri import parse_source_uri
from appliance.codec.transport import parse_udp_uri
from appliance.fleet.topics import parse_broker

RESTART: JsonDict = {"restart": True}


class Section(BaseModel):
    # Unknown keys are errors: a typo must never be silently ignored on a camera.
    # Strict: `port: yes` is a mistake, not 1 (ints still pass where floats are asked).
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True, frozen=True
    )


def _check_source_uri(uri: str) -> str:
    # One spelling per source (/dev/video0 -> v4l2:///dev/video0), so the selector can
    # recognise the running source among its candidates.
    return parse_source_uri(uri).uri  # raises ValueError with the accepted forms


SourceUri = Annotated[str, AfterValidator(_check_source_uri)]


def _accepted_by(parse: Callable[[str], object]) -> AfterValidator:
    """A string field valid when ``parse`` takes it (its ValueError says what is accepted)."""

    def check(value: str) -> str:
        parse(value)
        return value

    return AfterValidator(check)


class SourceConfig(Section):
    uri: str = Field(
        "auto",
        description="Where frames come from: auto (first working of csi://0, USB cameras, "
        "synthetic://), csi://N, v4l2:///dev/videoN, file://PATH or synthetic://",
    )
    fallback: list[SourceUri] = Field(
        default_factory=lambda: ["synthetic://"],
        description="Sources tried in order when the main one fails or is unplugged",
    )
    width: int = Field(1280, ge=16, le=7680, multiple_of=2, description="Capture width, px")
    height: int = Field(720, ge=16, le=4320, multiple_of=2, description="Capture height, px")
    fps: float = Field(30.0, gt=0, le=240, description="Capture frame rate")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return value if value == "auto" else _check_source_uri(value)


class PipelineConfig(Section):
    queue_depth: int = Field(
        1,
        ge=1,
        le=8,
        description="Frames waiting per stage before the oldest is dropped",
        json_schema_extra=RESTART,
    )


class VisionConfig(Section):
    enabled: bool = Field(True, description="Find faces and their 468 landmarks on every frame")
    max_faces: int = Field(4, ge=1, le=8, description="Most faces tracked at once")
    detect_every: int = Field(
        10, ge=1, le=300, description="Frames between detector runs looking for new faces"
    )
    iris: bool = Field(True, description="Track the irises (eye contact needs them)")
    pose: bool = Field(True, description="Estimate the 6-DoF head pose")
    smoothing: bool = Field(True, description="One-Euro filtering of the landmarks")
    backend: Literal["auto", "tensorrt", "onnxruntime"] = Field(
        "auto",
        description="Inference backend; auto: TensorRT where present",
        json_schema_extra=RESTART,
    )
    threads: int = Field(
        1,
        ge=1,
        le=8,
        description="CPU threads per network (ONNX Runtime)",
        json_schema_extra=RESTART,
    )


class AlignConfig(Section):
    enabled: bool = Field(
        True, description="Face alignment as a whole (off: the picture as captured)"
    )
    framing: bool = Field(True, description="Auto-framing: a virtual pan/tilt/zoom crop")
    level: bool = Field(True, description="Rotate so the eyes are level (small angles only)")
    group: bool = Field(True, description="Frame everyone in view, not only the lead face")
    lock: Literal["largest", "active"] = Field(
        "largest", description="Lead face: the largest, or the one talking"
    )
    dwell_s: float = Field(
        1.0, ge=0, le=10, description="Seconds before another face takes the lead or joins"
    )
    dead_band: float = Field(
        0.05, ge=0, le=0.3, description="How far (fraction of the crop) a face may move first"
    )
    max_zoom: float = Field(3.0, ge=1, le=8, description="Tightest crop, as a zoom factor")
    face_height: float = Field(
        0.36, ge=0.15, le=0.8, description="Wanted face height, fraction of the picture"
    )
    pan_speed: float = Field(
        8.0, gt=0, le=40, description="Pan/tilt responsiveness (settles in 5.8/speed s)"
    )
    zoom_speed: float = Field(
        4.0, gt=0, le=40, description="Zoom responsiveness (settles in 5.8/speed s)"
    )
    max_roll_deg: float = Field(
        15.0, ge=0, le=30, description="Levelling corrects head tilts up to this angle"
    )
    lost_hold_s: float = Field(
        2.0, ge=0, le=60, description="Seconds the crop holds after the face is lost"
    )
    widen_s: float = Field(
        4.0, gt=0, le=60, description="Seconds to widen to the full picture after that"
    )
    eye_contact: bool = Field(
        False, description="Redirect the gaze toward the lens by warping the eye regions"
    )
    eye_contact_max_deg: float = Field(
        20.0, ge=5, le=40, description="Gaze angle beyond which eye contact fades out"
    )
    frontalize: bool = Field(
        False, description="Turn the face toward the camera for small head turns"
    )
    frontalize_max_deg: float = Field(
        15.0, ge=5, le=25, description="Head yaw/pitch beyond which frontalization is off"
    )


class EnhanceConfig(Section):
    mode: Literal["off", "frame", "face"] = Field(
        "off", description="x2 super-resolution of the whole frame, or of the faces only"
    )
    zoom: bool = Field(
        False, description="Auto-framing zooms of 2x or more get their detail from the network"
    )


class BackgroundConfig(Section):
    mode: Literal["off", "blur", "replace"] = Field(
        "off", description="Keep, blur or replace what is behind the person"
    )
    blur: float = Field(
        0.03, gt=0, le=0.2, description="Blur radius, fraction of the picture height"
    )
    image: str = Field(
        "", description="Picture behind the person in replace mode (empty: the colour)"
    )
    color: str = Field(
        "#30404a", pattern=r"^#[0-9a-fA-F]{6}$", description="Colour behind the person"
    )
    stability: float = Field(
        0.6, ge=0, lt=1, description="Temporal smoothing of the person mask (0: none)"
    )


class CodecConfig(Section):
    enabled: bool = Field(
        False, description="Send the low-bandwidth face codec's stream to `destination`"
    )
    destination: Annotated[str, _accepted_by(parse_udp_uri)] = Field(
        "udp://127.0.0.1:5004", description="Where the codec's stream goes: udp://HOST:PORT"
    )
    mode: Literal["hybrid", "keypoints"] = Field(
        "hybrid",
        description="hybrid: a low-resolution real stream fused with a sharp picture "
        "(follows max_kbps); keypoints: the face mesh warp alone (follows floor)",
    )
    max_kbps: float = Field(
        20.0, ge=4, le=400, description="The hybrid's rate, kbit/s (whole datagrams)"
    )
    floor: float = Field(
        0.80,
        ge=0,
        le=0.99,
        description="Face MS-SSIM no received frame may fall below; lower saves bits",
    )
    reference_quality: int = Field(
        40, ge=10, le=100, description="Quality of the reference pictures (WebP's 10–100 scale)"
    )
    reference_codec: Literal["av1", "webp"] = Field(
        "av1", description="How reference pictures are coded: av1 (half of webp's bytes) or webp"
    )
    intra_period: int = Field(
        15, ge=1, le=300, description="Frames between packets that need no earlier one"
    )


class AudioConfig(Section):
    enabled: bool = Field(
        True, description="Capture the microphone, remove noise and send it to `output`"
    )
    input: Annotated[str, _accepted_by(parse_audio_source)] = Field(
        "synthetic://",
        description="Microphone: alsa:DEVICE (e.g. alsa:hw:1,0), file://PATH.wav (looped) "
        "or synthetic:// (speech in step with the synthetic face)",
    )
    output: Annotated[str, _accepted_by(parse_audio_sink)] = Field(
        "gadget",
        description="Where the cleaned audio goes: gadget (the USB gadget's microphone, "
        "nowhere without one), alsa:DEVICE, file://PATH.wav, memory:// or null",
    )
    noise_removal: Literal["off", "spectral", "gtcrn"] = Field(
        "gtcrn",
        description="off; spectral (classical); gtcrn (the network, spectral if it cannot load)",
    )
    strength: float = Field(
        1.0, ge=0, le=1, description="How much noise is removed: 0 none to 1 all it can"
    )
    gain_db: float = Field(0.0, ge=-20, le=30, description="Gain before noise removal, dB")
    mute: bool = Field(False, description="Send silence")


class FleetConfig(Section):
    enabled: bool = Field(
        False, description="Connect to the fleet's MQTT broker", json_schema_extra=RESTART
    )
    broker: Annotated[str, _accepted_by(parse_broker)] = Field(
        "mqtts://localhost:8883",
        description="mqtts://HOST:PORT (TLS) or mqtt://HOST:PORT",
        json_schema_extra=RESTART,
    )
    device_id: str = Field(
        "",
        pattern=r"^([a-z0-9][a-z0-9_-]{0,62})?$",
        description="This camera's name in the topic tree (empty: the host name)",
        json_schema_extra=RESTART,
    )
    username: str = Field("", description="Broker user (empty: none)", json_schema_extra=RESTART)
    password_file: str = Field(
        "", description="File holding the broker password", json_schema_extra=RESTART
    )
    ca_file: str = Field(
        "", description="CA the broker's certificate must chain to", json_schema_extra=RESTART
    )
    cert_file: str = Field(
        "", description="This camera's client certificate (PEM)", json_schema_extra=RESTART
    )
    key_file: str = Field(
        "", description="The client certificate's key (PEM)", json_schema_extra=RESTART
    )
    topic_prefix: str = Field(
        "appliance",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Root of the topic tree",
        json_schema_extra=RESTART,
    )
    telemetry_s: float = Field(10.0, ge=1, le=3600, description="Seconds between telemetry")
    home_assistant: bool = Field(
        False,
        description="Announce the camera to Home Assistant (MQTT discovery, retained "
        "under homeassistant/)",
        json_schema_extra=RESTART,
    )


class UvcConfig(Section):
    enabled: bool = Field(
        False,
        description="Stream the processed picture to the USB host, through the gadget "
        "that `appliance gadget up` built",
        json_schema_extra=RESTART,
    )


class OtaConfig(Section):
    enabled: bool = Field(
        False,
        description="Run the models from the update agent's A/B slots and accept signed "
        "model updates (MQTT, web page)",
        json_schema_extra=RESTART,
    )
    root: str = Field(
        "",
        description="The agent's directory: slots, state, keys/*.pub (empty: "
        "$APPLIANCE_OTA_DIR, else /var/lib/appliance/ota)",
        json_schema_extra=RESTART,
    )
    health_s: float = Field(
        10.0,
        ge=0,
        le=600,
        description="Seconds new models must keep the pipeline at its frame rate, with no "
        "failed frame, before they are committed",
    )
    min_rate: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of the frame rate before the update that new models must keep",
    )


class WebConfig(Section):
    enabled: bool = Field(
        True, description="Serve the live picture and API", json_schema_extra=RESTART
    )
    bind: str = Field(
        "127.0.0.1",
        description="Address to listen on; 0.0.0.0 exposes the page on the LAN",
        json_schema_extra=RESTART,
    )
    port: int = Field(8080, ge=1, le=65535, description="TCP port", json_schema_extra=RESTART)
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of the preview")
    preview_fps: float = Field(15.0, gt=0, le=60, description="Frame rate cap of the preview")
    overlay: bool = Field(False, description="Draw the face mesh, irises and pose on the preview")

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        ipaddress.ip_address(value)  # ValueError names the bad address
        return value


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")


class DeviceConfig(Section):
    name: str = Field(
        "Conference camera", min_length=1, max_length=64, description="Name shown to people"
    )


class Config(Section):
    version: Literal[1] = Field(1, description="Schema version of this file")
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    enhance: EnhanceConfig = Field(default_factory=EnhanceConfig)
    background: BackgroundConfig = Field(default_factory=BackgroundConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    ota: OtaConfig = Field(default_factory=OtaConfig)
    uvc: UvcConfig = Field(default_factory=UvcConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def restart_fields(model: type[BaseModel] = Config, prefix: str = "") -> set[str]:
    """Dotted paths of the fields that only take effect after a restart."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("restart"):
            paths.add(path)
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= restart_fields(annotation, path + ".")
    return paths
