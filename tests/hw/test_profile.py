"""Board profiles: the shipped files validate, detection picks the right one, and a
broken file is reported with its path, the field path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from appliance.hw.profile import (
    GENERIC_PROFILE,
    BoardProfile,
    ProfileError,
    UvcSpec,
    default_profiles_dir,
    detect_board,
    format_validation_error,
    load_profile,
    load_profiles,
)

HW_DIR = Path(__file__).resolve().parents[2] / "hw"
SHIPPED = [
    "generic-x86",
    "jetson-agx-orin-devkit",
    "jetson-orin-nano-devkit",
    "jetson-xavier-nx-devkit",
]

# /proc/device-tree/compatible as the kernel writes it: NUL-terminated strings, most
# specific first (mainline and L4T device trees of the devkits).
COMPATIBLE = {
    "jetson-orin-nano-devkit": (
        b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0"
    ),
    "jetson-agx-orin-devkit": (
        b"nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0"
    ),
    "jetson-xavier-nx-devkit": (
        b"nvidia,p3509-0000+p3668-0001\0nvidia,p3668-0001\0nvidia,tegra194\0"
    ),
}


def _shipped_data(name: str) -> dict:
    return yaml.safe_load((HW_DIR / f"{name}.yaml").read_text())


def _write(directory: Path, name: str, data: dict) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- shipped profiles ------------------------------------------------------------------------


def test_every_shipped_profile_validates() -> None:
    profiles = load_profiles(HW_DIR)
    assert [p.name for p in profiles] == SHIPPED


def test_default_dir_is_repo_hw_and_env_overrides(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("APPLIANCE_HW_DIR", raising=False)
    assert default_profiles_dir().resolve() == HW_DIR.resolve()
    monkeypatch.setenv("APPLIANCE_HW_DIR", str(tmp_path))
    assert default_profiles_dir() == tmp_path
    monkeypatch.setenv("APPLIANCE_HW_DIR", str(tmp_path / "absent"))
    with pytest.raises(ProfileError, match="APPLIANCE_HW_DIR"):
        default_profiles_dir()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_uncompressed_modes_fit_usb2(name: str) -> None:
    # Even a SuperSpeed board enumerates at high speed on a USB 2 port or cable, so
    # the shipped profiles keep every YUYV mode inside high-speed bandwidth.
    uvc = load_profile(HW_DIR / f"{name}.yaml").uvc
    assert uvc.bandwidth_problems("high") == []
    assert uvc.formats[0].format == "mjpeg"
    assert any(
        (f.width, f.height) == (1920, 1080) and 30 in f.fps
        for fmt in uvc.formats
        if fmt.format == "mjpeg"
        for f in fmt.frames
    )


def test_jetson_profiles_name_udc_and_gpu() -> None:
    profiles = {p.name: p for p in load_profiles(HW_DIR)}
    for name in ("jetson-orin-nano-devkit", "jetson-agx-orin-devkit"):
        assert profiles[name].udc == ["3550000.usb", "3550000.xudc"]
        assert profiles[name].gpu.arch == "sm_87"
        assert profiles[name].uvc.usb_speed == "super"
    assert profiles["jetson-xavier-nx-devkit"].udc[0] == "3550000.xudc"
    assert profiles["jetson-xavier-nx-devkit"].uvc.usb_speed == "high"
    assert profiles[GENERIC_PROFILE].udc == []
    imx219 = next(s for s in profiles["jetson-orin-nano-devkit"].csi_sensors if s.name == "IMX219")
    assert [(m.width, m.height, m.fps) for m in imx219.modes] == [
        (3280, 2464, 21),
        (3280, 1848, 28),
        (1920, 1080, 30),
        (1640, 1232, 30),
        (1280, 720, 60),
    ]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_offer_a_48k_mono_16_bit_microphone(name: str) -> None:
    mic = load_profile(HW_DIR / f"{name}.yaml").microphone
    assert mic is not None
    assert (mic.sample_rate, mic.channels, mic.sample_size) == (48000, 1, 2)


def test_audio_section_is_optional_and_microphone_false_means_none(tmp_path) -> None:
    data = _shipped_data("jetson-xavier-nx-devkit")
    del data["audio"]
    assert load_profile(_write(tmp_path, "jetson-xavier-nx-devkit", data)).microphone is None
    data["audio"] = {"microphone": False}
    board = load_profile(_write(tmp_path, "jetson-xavier-nx-devkit", data))
    assert board.audio is not None and board.microphone is None


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMPATIBLE))
def test_detects_each_jetson_devkit(tmp_path, name: str) -> None:
    compatible = tmp_path / "compatible"
    compatible.write_bytes(COMPATIBLE[name])
    board = detect_board(compatible, HW_DIR, machine="aarch64")
    assert board.name == name
    assert board.detected
    assert "matches" in board.detection_reason


def test_detects_orin_nano_super_device_tree(tmp_path) -> None:
    compatible = tmp_path / "compatible"
    compatible.write_bytes(
        b"nvidia,p3768-0000+p3767-0005-super\0nvidia,p3767-0005\0nvidia,tegra234\0"
    )
    assert detect_board(compatible, HW_DIR, machine="aarch64").name == "jetson-orin-nano-devkit"


def test_missing_compatible_on_x86_is_the_dev_box(tmp_path) -> None:
    board = detect_board(tmp_path / "absent", HW_DIR, machine="x86_64")
    assert board.name == GENERIC_PROFILE
    assert board.detected


def test_missing_compatible_on_arm_falls_back_undetected(tmp_path) -> None:
    board = detect_board(tmp_path / "absent", HW_DIR, machine="aarch64")
    assert board.name == GENERIC_PROFILE
    assert not board.detected
    assert "aarch64" in board.detection_reason


def test_unknown_jetson_carrier_falls_back_undetected(tmp_path) -> None:
    compatible = tmp_path / "compatible"
    compatible.write_bytes(b"acme,camera-board\0nvidia,p3767-0005\0nvidia,tegra234\0")
    board = detect_board(compatible, HW_DIR, machine="aarch64")
    assert board.name == GENERIC_PROFILE
    assert not board.detected
    assert "acme,camera-board" in board.detection_reason


def test_most_specific_compatible_string_wins(tmp_path) -> None:
    # A profile for the bare module sorts first by name, but the carrier+module
    # string comes first in the device tree, so the devkit profile wins.
    for name in ("generic-x86", "jetson-orin-nano-devkit"):
        _write(tmp_path, name, _shipped_data(name))
    module_only = _shipped_data("jetson-orin-nano-devkit")
    module_only["name"] = "a-orin-module"
    module_only["match"] = ["nvidia,p3767-0005"]
    _write(tmp_path, "a-orin-module", module_only)
    compatible = tmp_path / "compatible"
    compatible.write_bytes(COMPATIBLE["jetson-orin-nano-devkit"])
    assert detect_board(compatible, tmp_path).name == "jetson-orin-nano-devkit"


def test_detection_without_generic_profile_is_an_error(tmp_path) -> None:
    _write(tmp_path, "jetson-orin-nano-devkit", _shipped_data("jetson-orin-nano-devkit"))
    with pytest.raises(ProfileError, match=GENERIC_PROFILE):
        detect_board(tmp_path / "absent", tmp_path)


# --- broken profiles ---------------------------------------------------------------------------


def _broken(tmp_path: Path, mutate) -> ProfileError:
    data = _shipped_data("jetson-xavier-nx-devkit")
    mutate(data)
    path = _write(tmp_path, "jetson-xavier-nx-devkit", data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return info.value


def test_unknown_key_is_named(tmp_path) -> None:
    err = _broken(tmp_path, lambda d: d["uvc"].update(max_pakcet=1024))
    assert any(
        e.endswith("jetson-xavier-nx-devkit.yaml: uvc.max_pakcet: unknown key") for e in err.errors
    )


def test_negative_fps_names_the_element(tmp_path) -> None:
    def mutate(d: dict) -> None:
        d["uvc"]["formats"][0]["frames"][1]["fps"][0] = -30

    err = _broken(tmp_path, mutate)
    assert len(err.errors) == 1
    assert err.errors[0].endswith(
        "jetson-xavier-nx-devkit.yaml: uvc.formats[0].frames[1].fps[0]: must be > 0"
    )


def test_sensor_fps_above_limit(tmp_path) -> None:
    def mutate(d: dict) -> None:
        d["csi_sensors"][0]["modes"][4]["fps"] = 1000

    err = _broken(tmp_path, mutate)
    assert "csi_sensors[0].modes[4].fps: must be <= 240" in str(err)


def test_yuyv_1080p30_over_high_speed_is_rejected(tmp_path) -> None:
    def mutate(d: dict) -> None:
        d["uvc"]["formats"][1]["frames"].append({"width": 1920, "height": 1080, "fps": [30]})

    err = _broken(tmp_path, mutate)
    (line,) = err.errors
    assert "uvc.formats[1].frames[2].fps[0]: yuyv 1920x1080 at 30 fps needs 124.4 MB/s" in line
    assert "high-speed" in line and "24.5 MB/s" in line


def test_odd_yuyv_size_is_rejected(tmp_path) -> None:
    def mutate(d: dict) -> None:
        d["uvc"]["formats"][1]["frames"][0]["width"] = 641

    err = _broken(tmp_path, mutate)
    assert "uvc.formats[1].frames[0]: 641x480: yuyv frame sizes must be even" in str(err)


def test_bad_audio_values_are_named(tmp_path) -> None:
    def mutate(d: dict) -> None:
        d["audio"].update(sample_rate=44000, channels=6, sample_size=1, rate=48000)

    text = str(_broken(tmp_path, mutate))
    assert "audio.sample_rate: 44000 Hz: the daemon's audio path sends 48000 Hz only" in text
    assert "audio.channels: must be 1: the daemon's audio path is mono, not 6" in text
    assert "audio.sample_size: must be 2: the daemon's audio path sends 16-bit samples" in text
    assert "audio.rate: unknown key" in text
    err = _broken(tmp_path, lambda d: d["audio"].pop("microphone"))
    assert "audio.microphone: missing required key" in str(err)


def test_missing_key_and_wrong_type(tmp_path) -> None:
    def mutate(d: dict) -> None:
        del d["soc"]
        d["gpu"]["tensorrt"] = "maybe"

    err = _broken(tmp_path, mutate)
    text = str(err)
    assert "jetson-xavier-nx-devkit.yaml: soc: missing required key" in text
    assert "jetson-xavier-nx-devkit.yaml: gpu.tensorrt:" in text


def test_soc_gpu_mismatch(tmp_path) -> None:
    err = _broken(tmp_path, lambda d: d["gpu"].update(arch="sm_87"))
    assert "gpu.arch: tegra194 carries sm_72, not sm_87" in str(err)


def test_name_must_match_file(tmp_path) -> None:
    err = _broken(tmp_path, lambda d: d.update(name="something-else"))
    assert "name: 'something-else' does not match the file name" in str(err)


def test_yaml_syntax_error_has_line(tmp_path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nuvc: [unclosed\n")
    with pytest.raises(ProfileError, match=r"x\.yaml: line \d+, column \d+: invalid YAML"):
        load_profile(path)


def test_load_profiles_reports_every_broken_file(tmp_path) -> None:
    good = _shipped_data("generic-x86")
    _write(tmp_path, "generic-x86", good)
    bad1 = dict(good, name="bad-one", colour="red")
    bad2 = dict(good, name="bad-two", soc="riscv")
    _write(tmp_path, "bad-one", bad1)
    _write(tmp_path, "bad-two", bad2)
    with pytest.raises(ProfileError) as info:
        load_profiles(tmp_path)
    text = str(info.value)
    assert "bad-one.yaml: colour: unknown key" in text
    assert "bad-two.yaml: soc:" in text


# --- bandwidth arithmetic -------------------------------------------------------------------


def _uvc(**kw) -> UvcSpec:
    base = {
        "usb_speed": "high",
        "max_packet": 3072,
        "formats": [{"format": "yuyv", "frames": [{"width": 640, "height": 480, "fps": [30]}]}],
    }
    base.update(kw)
    return UvcSpec.model_validate(base)


def test_high_speed_capacity() -> None:
    # 3 x 1024 bytes per microframe, 12-byte payload header, 8000 microframes a second.
    assert _uvc().payload_bytes_per_second() == (3072 - 12) * 8000
    vga10 = [{"format": "yuyv", "frames": [{"width": 640, "height": 480, "fps": [10]}]}]
    assert _uvc(max_packet=1024, formats=vga10).payload_bytes_per_second() == (1024 - 12) * 8000


def test_1024_byte_packets_cannot_carry_vga30() -> None:
    with pytest.raises(ValidationError) as info:
        _uvc(max_packet=1024)
    (line,) = format_validation_error(info.value, "test")
    assert line.startswith("test: formats[0].frames[0].fps[0]: yuyv 640x480 at 30 fps needs 18.4")


def test_superspeed_bursts_carry_720p30_yuyv() -> None:
    frames = [{"width": 1280, "height": 720, "fps": [30]}]
    fmt = [{"format": "yuyv", "frames": frames}]
    with pytest.raises(ValueError):
        _uvc(formats=fmt)  # 55 MB/s over high speed
    uvc = _uvc(usb_speed="super", max_burst=3, formats=fmt)
    assert uvc.payload_bytes_per_second() == (3072 * 4 - 12) * 8000
    # On a USB 2 link the same gadget must not offer it.
    assert uvc.formats_for_speed("high") == []
    with pytest.raises(ValueError, match="only at SuperSpeed"):
        _uvc(max_burst=1)


def test_mjpeg_is_not_rate_checked_but_capped_per_frame() -> None:
    frames = [{"width": 3840, "height": 2160, "fps": [30]}]
    uvc = _uvc(formats=[{"format": "mjpeg", "frames": frames}])
    assert uvc.max_compressed_frame_bytes(30) == int((3072 - 12) * 8000 / 30)


def test_profile_is_immutable_and_detection_is_a_copy(tmp_path) -> None:
    profile = load_profile(HW_DIR / "generic-x86.yaml")
    assert isinstance(profile, BoardProfile)
    assert not profile.detected
    flagged = profile.with_detection(True, "because")
    assert flagged.detected and flagged.detection_reason == "because"
    assert not profile.detected
    with pytest.raises(ValueError):
        profile.name = "other"
