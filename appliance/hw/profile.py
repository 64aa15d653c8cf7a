"""Board profiles: one YAML file per board in the repository's top-level ``hw/``.

A profile says what a board *is* (SoC, GPU architecture, the USB device controller
the UVC gadget binds to, its CSI sensors and their modes, its thermal zones) and what
the webcam advertises on it (UVC formats sized to the USB link; the USB microphone, if
any). The daemon reads it once at start-up; stages never branch on the board name.

Where the files are found (:func:`default_profiles_dir`):

1. ``$APPLIANCE_HW_DIR`` when set (deployments, tests);
2. ``hw/`` beside the ``appliance`` package, i.e. the repository top for a source
   checkout or an editable install -- the canonical location, fixed by the design card;
3. ``<sys.prefix>/share/appliance/hw`` and ``/usr/share/appliance/hw``, where a
   packager who builds a wheel or a .deb can install the same files as data.

The files are data validated by the models below; every error names the file, the
field path and the reason, e.g. ``hw/x.yaml: uvc.formats[0].frames[1].fps[0]: must be > 0``.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.paths import find_data_dir

GENERIC_PROFILE = "generic-x86"
COMPATIBLE_PATH = Path("/proc/device-tree/compatible")

# --- USB isochronous bandwidth -------------------------------------------------------
#
# High speed (USB 2.0) and SuperSpeed (USB 3.x) both schedule isochronous transfers in
# 125 us (micro)frames: 8000 service opportunities a second at bInterval 1.
MICROFRAMES_PER_SECOND = 8000
# The Linux UVC gadget (drivers/usb/gadget/function/uvc_video.c) puts one payload
# header in every isochronous request, one request per service interval. Newer kernels
# reserve 12 bytes for it (UVCG_REQUEST_HEADER_LEN; the header carries PTS/SCR), older
# ones 2: counting 12 keeps the check on the safe side for both.
UVC_PAYLOAD_HEADER_BYTES = 12
# Bytes per pixel of the uncompressed formats the gadget can advertise.
BYTES_PER_PIXEL = {"yuyv": 2}

Speed = Literal["high", "super"]
FormatName = Literal["mjpeg", "yuyv"]


class SubPathError(ValueError):
    """A model-level check that blames a field below the model it runs on.

    Pydantic puts an error raised in a model validator at the model's own location;
    ``sub_path`` (e.g. ``formats[1].frames[0].fps[0]``) lets the error formatter point
    at the offending element instead.
    """

    def __init__(self, sub_path: str, message: str) -> None:
        super().__init__(message)
        self.sub_path = sub_path


def _check_fps(value: float) -> float:
    if value <= 0:
        raise ValueError("must be > 0")
    if value > 240:
        raise ValueError("must be <= 240 (no sensor or UVC host here goes faster)")
    return value


def _check_dimension(value: int) -> int:
    if value <= 0:
        raise ValueError("must be > 0")
    # wWidth/wHeight are 16-bit fields in the UVC frame descriptor.
    if value > 65535:
        raise ValueError("must be <= 65535 (UVC frame descriptors store 16 bits)")
    return value


Fps = Annotated[float, AfterValidator(_check_fps)]
Dimension = Annotated[int, AfterValidator(_check_dimension)]


def _duplicates(items: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    dup: list[Any] = []
    for item in items:
        if item in seen and item not in dup:
            dup.append(item)
        seen.add(item)
    return dup


def _no_duplicates(values: list[str], what: str) -> list[str]:
    dup = _duplicates(values)
    if dup:
        raise ValueError(f"duplicate {what}: {', '.join(map(str, dup))}")
    return values


class _Strict(BaseModel):
    # A typo in a profile must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Strict):
    """The GPU the board carries; ``arch`` is the CUDA SM architecture (``sm_87``)."""

    arch: str | None = Field(default=None, pattern=r"^sm_\d{2,3}$")
    tensorrt: bool = False

    @model_validator(mode="after")
    def _tensorrt_needs_gpu(self) -> GpuSpec:
        if self.tensorrt and self.arch is None:
            raise SubPathError("tensorrt", "TensorRT cannot be expected without a GPU (arch)")
        return self


class SensorMode(_Strict):
    """One mode of a CSI sensor as the camera stack (Argus) reports it."""

    width: Dimension
    height: Dimension
    fps: Fps


class CsiSensor(_Strict):
    name: str = Field(min_length=1)
    modes: list[SensorMode] = Field(min_length=1)


class UvcFrame(_Strict):
    """One frame size and its frame rates; the first rate is the default interval."""

    width: Dimension
    height: Dimension
    fps: list[Fps] = Field(min_length=1)

    @field_validator("fps")
    @classmethod
    def _unique_rates(cls, value: list[float]) -> list[float]:
        dup = _duplicates(value)
        if dup:
            raise ValueError(f"duplicate rates: {', '.join(f'{r:g}' for r in dup)}")
        return value


class UvcFormat(_Strict):
    format: FormatName
    frames: list[UvcFrame] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_frames(self) -> UvcFormat:
        for i, frame in enumerate(self.frames):
            # YUYV packs two pixels in four bytes (Y0 U Y1 V), so a row needs an even
            # width; an odd height breaks the 4:2:0 conversions the encoder side does.
            if self.format == "yuyv" and (frame.width % 2 or frame.height % 2):
                raise SubPathError(
                    f"frames[{i}]",
                    f"{frame.width}x{frame.height}: yuyv frame sizes must be even",
                )
        sizes = [(f.width, f.height) for f in self.frames]
        dup = _duplicates(sizes)
        if dup:
            raise SubPathError("frames", f"duplicate frame size {dup[0][0]}x{dup[0][1]}")
        return self


class UvcSpec(_Strict):
    """What the UVC gadget advertises, and the isochronous endpoint that carries it.

    ``max_packet`` is the gadget's ``streaming_maxpacket``: up to 1024 bytes per
    transaction, and 2048/3072 mean 2 or 3 transactions per (micro)frame ("mult").
    ``max_burst`` (``streaming_maxburst``, SuperSpeed only) adds up to 15 more bursts.
    ``interval`` is ``streaming_interval``: one service every 2**(interval-1)
    microframes.
    """

    usb_speed: Speed
    max_packet: Literal[1024, 2048, 3072]
    max_burst: int = Field(default=0, ge=0, le=15)
    interval: int = Field(default=1, ge=1, le=16)
    formats: list[UvcFormat] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> UvcSpec:
        if self.usb_speed == "high" and self.max_burst:
            raise SubPathError("max_burst", "bursts exist only at SuperSpeed; use 0 for high")
        names = [f.format for f in self.formats]
        dup = _duplicates(names)
        if dup:
            raise SubPathError("formats", f"format {dup[0]} is listed twice")
        for path, message in self.bandwidth_problems(self.usb_speed):
            raise SubPathError(path, message)
        return self

    def bytes_per_interval(self, speed: Speed) -> int:
        """Bytes the streaming endpoint may move per service interval at ``speed``.

        Mirrors f_uvc.c: 2048/3072 become 2 or 3 transactions of 1024 bytes; at
        SuperSpeed each may repeat in ``max_burst`` + 1 bursts; at high speed there
        are no bursts.
        """
        mult = -(-self.max_packet // 1024)  # 1, 2 or 3
        size = self.max_packet // mult
        bursts = self.max_burst + 1 if speed == "super" else 1
        return size * mult * bursts

    def intervals_per_second(self, speed: Speed) -> float:
        # f_uvc.c forces bInterval 1 on a high-bandwidth (mult > 1) high-speed endpoint.
        interval = 1 if speed == "high" and self.max_packet > 1024 else self.interval
        return MICROFRAMES_PER_SECOND / 2 ** (interval - 1)

    def payload_bytes_per_second(self, speed: Speed | None = None) -> float:
        """Video bytes per second the endpoint can carry, payload headers deducted.

        An upper bound: a host with other periodic traffic on the same bus may grant
        less, so fitting here is necessary, not sufficient.
        """
        speed = speed or self.usb_speed
        per_interval = self.bytes_per_interval(speed) - UVC_PAYLOAD_HEADER_BYTES
        return per_interval * self.intervals_per_second(speed)

    def max_compressed_frame_bytes(self, fps: float, speed: Speed | None = None) -> int:
        """The largest MJPEG frame that still arrives at ``fps``: a cap for the encoder."""
        return int(self.payload_bytes_per_second(speed) / fps)

    def bandwidth_problems(self, speed: Speed) -> list[tuple[str, str]]:
        """(field path, reason) for every uncompressed frame rate that cannot fit ``speed``.

        An uncompressed frame is width * height * bytes-per-pixel bytes, every frame,
        so its rate is exact; compressed formats have no fixed rate and are capped per
        frame instead (:meth:`max_compressed_frame_bytes`).
        """
        capacity = self.payload_bytes_per_second(speed)
        problems: list[tuple[str, str]] = []
        for fi, fmt in enumerate(self.formats):
            bpp = BYTES_PER_PIXEL.get(fmt.format)
            if bpp is None:
                continue
            for ri, frame in enumerate(fmt.frames):
                for pi, fps in enumerate(frame.fps):
                    need = frame.width * frame.height * bpp * fps
                    if need > capacity:
                        problems.append(
                            (
                                f"formats[{fi}].frames[{ri}].fps[{pi}]",
                                f"{fmt.format} {frame.width}x{frame.height} at {fps:g} fps needs "
                                f"{need / 1e6:.1f} MB/s, but a {speed}-speed isochronous "
                                f"endpoint with max_packet {self.max_packet}"
                                + (f", max_burst {self.max_burst}" if speed == "super" else "")
                                + f" carries at most {capacity / 1e6:.1f} MB/s of payload; "
                                "use mjpeg, or a smaller size or rate",
                            )
                        )
        return problems

    def formats_for_speed(self, speed: Speed) -> list[UvcFormat]:
        """The formats with every uncompressed rate that ``speed`` cannot carry removed.

        A SuperSpeed-capable board still enumerates at high speed on a USB 2.0 port or
        cable; the gadget can give its high-speed descriptors this subset so the host
        is never offered a mode the link cannot deliver.
        """
        capacity = self.payload_bytes_per_second(speed)
        kept: list[UvcFormat] = []
        for fmt in self.formats:
            bpp = BYTES_PER_PIXEL.get(fmt.format)
            if bpp is None:
                kept.append(fmt)
                continue
            frames = []
            for frame in fmt.frames:
                rates = [r for r in frame.fps if frame.width * frame.height * bpp * r <= capacity]
                if rates:
                    frames.append(frame.model_copy(update={"fps": rates}))
            if frames:
                kept.append(fmt.model_copy(update={"frames": frames}))
        return kept


# Sample rates every host's USB Audio Class 2 driver takes (Windows' usbaudio2, macOS,
# snd-usb-audio); the noise removal runs at 48 kHz, so the shipped profiles use that.
# What the daemon's audio path sends (appliance/audio: 10-ms blocks of 48 kHz mono,
# written to the gadget's PCM as S16_LE): a profile cannot promise the host another
# format until the path converts to it.
SAMPLE_RATES = (48000,)


class AudioSpec(_Strict):
    """The microphone the camera offers the USB host beside the picture (UAC2).

    ``microphone`` says whether the gadget has one (``false``, like no ``audio`` section,
    builds the camera alone); the stream goes device to host only, at ``sample_rate``
    Hz, ``channels`` channels (1: mono) of ``sample_size`` bytes per sample.
    """

    microphone: bool
    sample_rate: int = 48000
    channels: int = 1
    sample_size: int = 2

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, value: int) -> int:
        if value not in SAMPLE_RATES:
            rates = ", ".join(str(r) for r in SAMPLE_RATES)
            raise ValueError(f"{value} Hz: the daemon's audio path sends {rates} Hz only")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"must be 1: the daemon's audio path is mono, not {value}")
        return value

    @field_validator("sample_size")
    @classmethod
    def _sample_size(cls, value: int) -> int:
        if value != 2:
            raise ValueError(
                f"must be 2: the daemon's audio path sends 16-bit samples, not {value}"
            )
        return value


# The GPU each Jetson SoC carries: Orin's Ampere iGPU is SM 8.7, Xavier's Volta SM 7.2.
_SOC_GPU_ARCH = {"tegra234": "sm_87", "tegra194": "sm_72"}


class BoardProfile(_Strict):
    """One board. ``detected``/``detection_reason`` are set by :func:`detect_board`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = Field(min_length=1)
    match: list[str] = Field(default_factory=list)
    soc: Literal["tegra234", "tegra194", "x86_64"]
    gpu: GpuSpec
    udc: list[str] = Field(default_factory=list)
    csi_sensors: list[CsiSensor] = Field(default_factory=list)
    uvc: UvcSpec
    audio: AudioSpec | None = None
    thermal_zones: list[str] = Field(default_factory=list)
    power_modes: list[str] = Field(default_factory=list)

    # Not part of the file: how this profile was chosen on this machine.
    _detected: bool = PrivateAttr(default=False)
    _detection_reason: str = PrivateAttr(default="not detected: loaded from a file")

    @field_validator("match")
    @classmethod
    def _match_strings(cls, value: list[str]) -> list[str]:
        for s in value:
            if not s or "\0" in s or s != s.strip():
                raise ValueError(f"{s!r} is not a device-tree compatible string")
        return _no_duplicates(value, "compatible strings")

    @field_validator("udc")
    @classmethod
    def _udc_names(cls, value: list[str]) -> list[str]:
        for s in value:
            if not s or "/" in s:
                raise ValueError(f"{s!r} is not a UDC name (an entry of /sys/class/udc)")
        return _no_duplicates(value, "UDC names")

    @field_validator("thermal_zones", "power_modes")
    @classmethod
    def _unique_names(cls, value: list[str]) -> list[str]:
        return _no_duplicates(value, "names")

    @model_validator(mode="after")
    def _consistent(self) -> BoardProfile:
        if self.soc != "x86_64" and not self.match:
            raise SubPathError("match", "a Jetson profile needs compatible strings to be detected")
        expected = _SOC_GPU_ARCH.get(self.soc)
        if expected and self.gpu.arch not in (None, expected):
            raise SubPathError("gpu.arch", f"{self.soc} carries {expected}, not {self.gpu.arch}")
        names = [s.name for s in self.csi_sensors]
        dup = _duplicates(names)
        if dup:
            raise SubPathError("csi_sensors", f"sensor {dup[0]} is listed twice")
        return self

    @property
    def microphone(self) -> AudioSpec | None:
        """The audio section when the board offers the host a microphone, else None."""
        return self.audio if self.audio is not None and self.audio.microphone else None

    @property
    def detected(self) -> bool:
        """True when this profile was matched to the running board (or is the x86 dev box)."""
        return self._detected

    @property
    def detection_reason(self) -> str:
        return self._detection_reason

    def with_detection(self, detected: bool, reason: str) -> BoardProfile:
        """A copy carrying how it was chosen (profiles themselves are immutable)."""
        copy = self.model_copy()
        copy._detected = detected
        copy._detection_reason = reason
        return copy


# --- loading -----------------------------------------------------------------------------


class ProfileError(Exception):
    """A profile file (or the profile directory) is unusable; ``errors`` holds one line each."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "missing required key",
}


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def format_validation_error(exc: ValidationError, source: str) -> list[str]:
    """``source: field.path[i]: message`` for every error pydantic found."""
    lines = []
    for err in exc.errors():
        loc = _format_loc(err["loc"])
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, SubPathError):
            loc = f"{loc}.{original.sub_path}" if loc else original.sub_path
            message = str(original)
        else:
            message = _FRIENDLY.get(err["type"], err["msg"])
            message = message.removeprefix("Value error, ")
        lines.append(f"{source}: {loc or '<top>'}: {message}")
    return lines


def _display(path: Path) -> str:
    """The path as a person would type it: relative to the cwd when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_profile(path: str | os.PathLike[str]) -> BoardProfile:
    """Read and validate one profile; raise :class:`ProfileError` naming file and field."""
    path = Path(path)
    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([f"{shown}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError([f"{shown}: {where}invalid YAML: {problem}"]) from exc
    if not isinstance(data, dict):
        raise ProfileError([f"{shown}: <top>: a profile must be a mapping of keys to values"])
    try:
        profile = BoardProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(exc, shown)) from exc
    # Detection and logs name profiles; a file called x.yaml holding "name: y" would
    # make both lie about where a setting came from.
    if profile.name != path.stem:
        raise ProfileError(
            [f"{shown}: name: {profile.name!r} does not match the file name {path.name!r}"]
        )
    return profile


def load_profiles(directory: str | os.PathLike[str] | None = None) -> list[BoardProfile]:
    """Every ``*.yaml`` profile in ``directory``, in file-name order.

    All files are checked before failing, so one run reports every broken profile.
    """
    directory = Path(directory) if directory is not None else default_profiles_dir()
    if not directory.is_dir():
        raise ProfileError([f"{_display(directory)}: profile directory does not exist"])
    profiles: list[BoardProfile] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            profiles.append(load_profile(path))
        except ProfileError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ProfileError(errors)
    if not profiles:
        raise ProfileError([f"{_display(directory)}: no *.yaml profiles"])
    return profiles


def default_profiles_dir() -> Path:
    """The first existing candidate; ProfileError listing all of them when none exists.

    ``$APPLIANCE_HW_DIR``, when set, is used as given (a wrong value is an error,
    not a reason to silently read some other directory).
    """
    try:
        return find_data_dir("hw", "hw", "APPLIANCE_HW_DIR")
    except FileNotFoundError as exc:
        raise ProfileError([str(exc)]) from None


# --- detection ---------------------------------------------------------------------------


def read_compatible(path: str | os.PathLike[str]) -> list[str]:
    """The NUL-separated strings of a device-tree ``compatible`` file, most specific first."""
    raw = Path(path).read_bytes()
    return [s for s in raw.decode("ascii", errors="replace").split("\0") if s]


def detect_board(
    compatible_path: str | os.PathLike[str] = COMPATIBLE_PATH,
    profiles_dir: str | os.PathLike[str] | None = None,
    machine: str | None = None,
) -> BoardProfile:
    """The profile of the running board, with ``detected`` and ``detection_reason`` set.

    The device tree lists compatible strings most specific first ("carrier+module",
    module, SoC). The profile matching the most specific string wins; among profiles
    matching the same string, the first in file-name order. Without a match:

    - an x86_64 machine without a device tree is the generic dev box: ``generic-x86``,
      detected;
    - anything else (an unknown Jetson carrier, another ARM board) also gets
      ``generic-x86`` -- it assumes no GPU, CSI sensor or UDC, so it is safe -- but
      ``detected`` is False and the reason says what was seen.
    """
    profiles = load_profiles(profiles_dir)
    by_name = {p.name: p for p in profiles}
    generic = by_name.get(GENERIC_PROFILE)
    if generic is None:
        raise ProfileError([f"the fallback profile {GENERIC_PROFILE}.yaml is missing"])
    machine = machine or platform.machine()

    try:
        compatible = read_compatible(compatible_path)
    except FileNotFoundError:
        compatible = None
    except OSError as exc:
        return generic.with_detection(
            False, f"cannot read {compatible_path}: {exc.strerror or exc}; using {GENERIC_PROFILE}"
        )

    if compatible:
        for entry in compatible:
            for profile in profiles:
                if entry in profile.match:
                    return profile.with_detection(
                        True, f"{entry!r} in {compatible_path} matches {profile.name}"
                    )
        return generic.with_detection(
            False,
            f"no profile matches {compatible_path} ({', '.join(compatible)}) on {machine}; "
            f"using {GENERIC_PROFILE}, which assumes no GPU, CSI sensor or UDC",
        )
    if re.fullmatch(r"x86_64|amd64|AMD64", machine):
        return generic.with_detection(
            True, f"no device tree ({compatible_path} absent or empty) on {machine}: dev machine"
        )
    return generic.with_detection(
        False,
        f"no device tree ({compatible_path} absent or empty) on {machine}; "
        f"using {GENERIC_PROFILE}, "
        "which assumes no GPU, CSI sensor or UDC",
    )
